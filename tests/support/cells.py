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
    """Per channel, as a client sees it (PAYLOAD.md): first deliveries go 1, 2, 3, ... with prevSeq
    chaining; anything else is a redelivery (at-least-once), byte-for-byte its first delivery."""
    for channel, messages in server.by_channel().items():
        first: dict[int, dict[str, Any]] = {}
        for message in messages:
            seq = seq_of(message)
            if seq in first:
                assert message == first[seq], f"{channel}: seq {seq} redelivered with other content"
                continue
            assert seq == len(first) + 1, f"{channel}: seq {seq} after {sorted(first)}"
            first[seq] = message
            prev = message["payload"]["prevSeq"]
            assert prev == (seq - 1 if seq > 1 else None), (channel, seq, prev)
