"""From enriched cells to broadcast messages (PAYLOAD.md): pure, so every rule is unit-tested.

A channel's cells of one batch become, in this order of preference:
- one `result_cell` when the channel has exactly one changed cell;
- `result_cells` messages, each as full as `max_payload_bytes` allows;
- a `result_refresh` for a cell that cannot be sent (too large alone, or not enrichable);
- one `result_refresh` of the whole assignment when the channel would need more than
  `max_messages_per_channel` messages: one refetch is cheaper than a flood.
A message Realtime refuses for good, with nothing staged after it on its channel, is followed by
a `result_refresh` of its assignment (`rejected_refresh`), so that its cells are not lost to the
clients.
Sizes are planned with the largest possible seq: filling in the real one never exceeds the budget.

Each cell is encoded once: the adapter's state (a JSON object, as PostgreSQL printed it) is
completed with the cell's coordinates and change and encoded without its closing brace
(`open_cell`); each message then closes its cells with their seq (`_stamp`), and the planner sizes
messages by byte lengths. Decoding and re-encoding every cell for sizing, for stamping and for
sending cost the daemon more CPU than everything else it does per cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

Event = Literal["result_cell", "result_cells", "result_refresh"]
Scope = Literal["cell", "pupil", "activity", "assignment"]
Reason = Literal["too_large", "enrich_failed", "backlog", "rejected"]
_CHANNEL_PREFIX = "assignment_results:"

_MAX_SEQ = 2**63 - 1  # channel_sequences.last_seq is a bigint
# Keys a Cell gets from the daemon rather than from the adapter's state (open_cell, _stamp).
_ADDED = frozenset(
    {"assignmentId", "groupId", "lessonId", "activityId", "pupilId", "op", "source", "changedAt"}
    | {"eventId", "seq", "prevSeq"}
)


class NotAnObject(ValueError):
    """The adapter's state is not a JSON object, so no Cell can be built on it."""


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The compact UTF-8 JSON a payload is measured (and sent) as."""
    return orjson.dumps(payload)


def event_id(channel: str, seq: int) -> str:
    """Deterministic, so a redelivery of a staged message carries the same id."""
    return f"{channel}:{seq}"


def assignment_id(group_id: str, lesson_id: str) -> str:
    return f"{group_id}__{lesson_id}"


def channel_coordinates(channel: str) -> tuple[str, str]:
    """(group id, lesson id) of a channel name: a group id never contains ':' (migration 0012:
    such a group gets no channel), so the group ends at the first ':' after the prefix."""
    if not channel.startswith(_CHANNEL_PREFIX):
        raise ValueError(f"not an assignment results channel: {channel!r}")
    group_id, colon, lesson_id = channel.removeprefix(_CHANNEL_PREFIX).partition(":")
    if not colon:
        raise ValueError(f"not an assignment results channel: {channel!r}")
    return group_id, lesson_id


def open_cell(
    state: str | None,
    *,
    group_id: str,
    lesson_id: str,
    activity_id: str,
    pupil_id: str,
    op: str,
    source: str,
    changed_at: str,
) -> bytes:
    """A Cell without its stamp (eventId, seq, prevSeq) and without its closing brace.

    `state` is the adapter's JSON object (cell_state_v2) as text; the keys added here win should
    the adapter ever return one of them too. The result is compact JSON. Runs once per changed
    cell, so the usual case (no key of ours in the state) splices two encodings instead of
    updating the decoded state key by key.
    """
    if state is None:
        raise NotAnObject("the cell state is null")
    try:
        cell = orjson.loads(state)
    except orjson.JSONDecodeError as exc:
        raise NotAnObject(f"the cell state is not JSON: {exc}") from exc
    if not isinstance(cell, dict):
        raise NotAnObject(f"the cell state is not a JSON object: {state[:80]!r}")
    if not _ADDED.isdisjoint(cell):  # ours win, and no key twice in one object
        for key in _ADDED:
            cell.pop(key, None)
    ours = orjson.dumps(
        {
            "assignmentId": assignment_id(group_id, lesson_id),
            "groupId": group_id,
            "lessonId": lesson_id,
            "activityId": activity_id,
            "pupilId": pupil_id,
            "op": op,
            "source": source,
            "changedAt": changed_at,
        }
    )
    if not cell:
        return ours[:-1]
    return orjson.dumps(cell)[:-1] + b"," + ours[1:-1]


def _stamp(channel: str, seq: int) -> bytes:
    """What closes a cell (and a result_cells envelope): eventId, seq, prevSeq and the brace."""
    prev = b"%d" % (seq - 1) if seq > 1 else b"null"
    return b',"eventId":%s,"seq":%d,"prevSeq":%s}' % (
        orjson.dumps(event_id(channel, seq)),
        seq,
        prev,
    )


def _cells_envelope(
    channel: str, group_id: str, lesson_id: str, seq: int, cells: Sequence[bytes]
) -> bytes:
    """A result_cells payload: its own eventId/seq/prevSeq, and every cell stamped alike."""
    stamp = _stamp(channel, seq)
    head = b'{"assignmentId":%s' % orjson.dumps(assignment_id(group_id, lesson_id))
    return head + stamp[:-1] + b',"cells":[' + b",".join(c + stamp for c in cells) + b"]}"


@dataclass(slots=True)
class ChannelItem:
    """One changed cell of one channel; `cell` (see `open_cell`) is None when not enrichable.

    Not frozen: one is made per changed cell, and a frozen dataclass's constructor costs twice
    as much. Nothing changes an item after it is made."""

    channel: str
    group_id: str
    lesson_id: str
    activity_id: str
    pupil_id: str
    cell: bytes | None
    oldest_change_at: datetime
    order: int  # the first outbox id of the cell: cells go out in the order they changed


@dataclass(frozen=True, slots=True)
class Refresh:
    scope: Scope
    reason: Reason
    pupil_id: str | None = None
    activity_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """A message waiting for its seq."""

    channel: str
    group_id: str
    lesson_id: str
    event: Event
    cells: tuple[bytes, ...]  # open cells (see `open_cell`), in change order
    refresh: Refresh | None
    oldest_change_at: datetime

    def encode(self, seq: int) -> bytes:
        """The payload's compact JSON, numbered `seq`."""
        match self.event:
            case "result_cell":
                return self.cells[0] + _stamp(self.channel, seq)
            case "result_cells":
                return _cells_envelope(self.channel, self.group_id, self.lesson_id, seq, self.cells)
            case "result_refresh":
                assert self.refresh is not None
                return encode_payload(
                    {
                        "assignmentId": assignment_id(self.group_id, self.lesson_id),
                        "groupId": self.group_id,
                        "lessonId": self.lesson_id,
                        "scope": self.refresh.scope,
                        "pupilId": self.refresh.pupil_id,
                        "activityId": self.refresh.activity_id,
                        "reason": self.refresh.reason,
                        "eventId": event_id(self.channel, seq),
                        "seq": seq,
                        "prevSeq": seq - 1 if seq > 1 else None,
                    }
                )

    def payload(self, seq: int) -> dict[str, Any]:
        """Decoded, for tests and logs: the pipeline itself moves the bytes of `encode`."""
        decoded: dict[str, Any] = orjson.loads(self.encode(seq))
        return decoded


def rejected_refresh(channel: str, oldest_change_at: datetime) -> PlannedMessage:
    """What follows a message Realtime refused for good: its clients refetch the assignment."""
    group_id, lesson_id = channel_coordinates(channel)
    return PlannedMessage(
        channel=channel,
        group_id=group_id,
        lesson_id=lesson_id,
        event="result_refresh",
        cells=(),
        refresh=Refresh("assignment", "rejected"),
        oldest_change_at=oldest_change_at,
    )


def plan_channel(
    items: Sequence[ChannelItem], *, max_payload_bytes: int, max_messages: int
) -> list[PlannedMessage]:
    """The messages for one channel's items of one batch (all items share the channel)."""
    if not items:
        return []
    return _ChannelPlan(items, max_payload_bytes).messages(max_messages)


class _ChannelPlan:
    def __init__(self, items: Sequence[ChannelItem], max_payload_bytes: int) -> None:
        self.items = sorted(items, key=lambda item: item.order)
        first = self.items[0]
        if any(item.channel != first.channel for item in self.items):
            raise ValueError("plan_channel takes the items of one channel")
        self.channel, self.group_id, self.lesson_id = first.channel, first.group_id, first.lesson_id
        self.budget = max_payload_bytes
        self.stamp_size = len(_stamp(self.channel, _MAX_SEQ))

    def messages(self, max_messages: int) -> list[PlannedMessage]:
        enriched = [item for item in self.items if item.cell is not None]
        planned: list[PlannedMessage] = []
        if len(enriched) == 1:
            single = self._message("result_cell", enriched)
            fits = len(single.encode(_MAX_SEQ)) <= self.budget
            planned.append(single if fits else self._cell_refresh(enriched[0], "too_large"))
        elif enriched:
            planned.extend(self._pack(enriched))
        planned.extend(
            self._cell_refresh(item, "enrich_failed") for item in self.items if item.cell is None
        )
        if len(planned) > max_messages:
            reason: Reason = "backlog" if enriched else "enrich_failed"
            return [self._message("result_refresh", self.items, Refresh("assignment", reason))]
        return planned

    def _pack(self, cells: Sequence[ChannelItem]) -> list[PlannedMessage]:
        """Greedy, in change order: as many cells per `result_cells` as the budget allows."""
        base = len(_cells_envelope(self.channel, self.group_id, self.lesson_id, _MAX_SEQ, ()))
        out: list[PlannedMessage] = []
        too_large: list[PlannedMessage] = []
        chunk: list[ChannelItem] = []
        size = base
        for item in cells:
            assert item.cell is not None
            cell_size = len(item.cell) + self.stamp_size
            if base + cell_size > self.budget:
                too_large.append(self._cell_refresh(item, "too_large"))
                continue
            if chunk and size + 1 + cell_size > self.budget:
                out.append(self._message("result_cells", chunk))
                chunk, size = [], base
            size += cell_size + (1 if chunk else 0)
            chunk.append(item)
        if chunk:
            out.append(self._message("result_cells", chunk))
        return out + too_large

    def _message(
        self, event: Event, members: Sequence[ChannelItem], refresh: Refresh | None = None
    ) -> PlannedMessage:
        return PlannedMessage(
            channel=self.channel,
            group_id=self.group_id,
            lesson_id=self.lesson_id,
            event=event,
            cells=() if refresh else tuple(m.cell for m in members if m.cell is not None),
            refresh=refresh,
            oldest_change_at=min(m.oldest_change_at for m in members),
        )

    def _cell_refresh(self, item: ChannelItem, reason: Reason) -> PlannedMessage:
        return self._message(
            "result_refresh", [item], Refresh("cell", reason, item.pupil_id, item.activity_id)
        )
