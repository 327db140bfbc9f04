"""Reading cells out of what the capture server accepted, and the seq invariants of PAYLOAD.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.capture_server import CaptureServer, seq_of

Cell = dict[str, Any]


def cells_of(message: dict[str, Any]) -> list[Cell]:
    payload = message["payload"]
    if message["event"] == "result_cells":
        return list(payload["cells"])
    if message["event"] == "result_cell":
        return [payload]
    return []


def last_cell(server: CaptureServer, channel: str, activity: str, pupil: object) -> Cell | None:
    """The latest state of one cell among the accepted messages of a channel."""
    found = None
    for message in server.by_channel().get(channel, []):
        for cell in cells_of(message):
            if cell["activityId"] == activity and cell["pupilId"] == str(pupil):
                found = cell
    return found


def cell_is(
    channel: str, activity: str, pupil: object, **expected: Any
) -> Callable[[CaptureServer], bool]:
    def check(server: CaptureServer) -> bool:
        cell = last_cell(server, channel, activity, pupil)
        return cell is not None and all(cell.get(k) == v for k, v in expected.items())

    return check


def assert_gapless(server: CaptureServer) -> None:
    """Per channel: seq starts at 1, goes up by exactly one, and prevSeq chains (dups allowed)."""
    for channel, messages in server.by_channel().items():
        seqs = [seq_of(m) for m in messages]
        distinct = sorted(set(seqs))
        assert distinct == list(range(1, len(distinct) + 1)), (channel, seqs)
        assert seqs == sorted(seqs), f"{channel}: published out of order: {seqs}"
        for message in messages:
            seq, prev = message["payload"]["seq"], message["payload"]["prevSeq"]
            assert prev == (seq - 1 if seq > 1 else None), (channel, seq, prev)
