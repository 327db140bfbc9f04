"""The teacher's results matrix and the pure reducer that keeps it current (PAYLOAD.md rules).

Everything here is pure: the subscription feeds broadcasts and refetch results in, and acts on the
`RefetchRequest`s that come out. The same rules are implemented in clients/js/src/reducer.ts and
both are checked against one table of cases (clients/js/test/fixtures/reducer-cases.json).

Rules:
- a message whose `seq` is not above the last applied `seq` is a duplicate and is ignored;
- a cell is replaced only by something newer: a message with a higher `seq` than the cell's, or a
  refetch whose channel `seq` is at least the cell's (a refetch reads after that seq was staged);
- a message whose `prevSeq` is not the last applied `seq` reveals a gap: its cells are applied
  anyway (they are full, latest state) and the whole assignment is refetched once; when that
  snapshot's `seq` does not cover the gap, it is refetched again;
- `result_refresh` refetches the named scope; only a whole-assignment snapshot moves `lastSeq`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast, get_args

Status = Literal["not_submitted", "submitted", "ai_marked", "teacher_marked"]
Scope = Literal["cell", "pupil", "activity", "assignment"]
Op = Literal["insert", "update", "delete"]
Source = Literal["pupil", "upload", "ai", "teacher", "system"]
EventName = Literal["result_cell", "result_cells", "result_refresh"]

STATUSES: tuple[Status, ...] = get_args(Status)
SCOPES: tuple[Scope, ...] = get_args(Scope)


class MalformedPayload(ValueError):
    """A payload that does not follow PAYLOAD.md; the client refetches instead of guessing."""


def channel_name(group_id: str, lesson_id: str) -> str:
    return f"assignment_results:{group_id}:{lesson_id}"


def has_channel(group_id: str) -> bool:
    """A group id with ':' has no channel: its name would not say which group it is for
    (sql/migrations/0012); such a group's results are polled."""
    return ":" not in group_id


def assignment_id(group_id: str, lesson_id: str) -> str:
    return f"{group_id}__{lesson_id}"


@dataclass(frozen=True, slots=True)
class AiInfo:
    model: str | None
    feedback_at: str | None
    has_feedback: bool


@dataclass(frozen=True, slots=True)
class Cell:
    """One pupil x activity cell; `seq` is the channel seq its state is known to be current at."""

    pupil_id: str
    activity_id: str
    status: Status
    submission_id: str | None = None
    score: float | None = None
    ai_score: float | None = None
    teacher_score: float | None = None
    ai: AiInfo | None = None
    submitted_at: str | None = None
    upload_count: int = 0
    has_upload: bool = False
    needs_marking: bool = False
    op: str | None = None
    source: str | None = None
    changed_at: str | None = None
    seq: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.pupil_id, self.activity_id)


@dataclass(frozen=True, slots=True)
class Activity:
    activity_id: str
    title: str
    kind: str
    position: int


@dataclass(frozen=True, slots=True)
class RefetchRequest:
    scope: Scope
    reason: str
    pupil_id: str | None = None
    activity_id: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What read_assignment_results returns, parsed."""

    group_id: str
    lesson_id: str
    seq: int | None
    activities: tuple[Activity, ...]
    pupil_ids: tuple[str, ...]
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class Counters:
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    refreshes: int = 0
    ignored: int = 0


@dataclass(frozen=True, slots=True)
class Matrix:
    group_id: str
    lesson_id: str
    activities: tuple[Activity, ...] = ()
    pupil_ids: tuple[str, ...] = ()
    cells: Mapping[tuple[str, str], Cell] = field(default_factory=dict)
    last_seq: int | None = None  # None until the first whole-assignment snapshot
    required_seq: int | None = None  # a gap: the next assignment snapshot must reach this seq
    assignment_refetch_pending: bool = False
    loaded: bool = False
    counters: Counters = Counters()

    @property
    def assignment_id(self) -> str:
        return assignment_id(self.group_id, self.lesson_id)

    @property
    def channel(self) -> str:
        return channel_name(self.group_id, self.lesson_id)

    def cell(self, pupil_id: str, activity_id: str) -> Cell | None:
        return self.cells.get((pupil_id, activity_id))


Effects = tuple[RefetchRequest, ...]


def empty(group_id: str, lesson_id: str) -> Matrix:
    return Matrix(group_id=group_id, lesson_id=lesson_id)


# ---------------------------------------------------------------------------------------- parsing


def _str(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _opt_str(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedPayload(f"{key!r} must be a string or null, got {value!r}")


# A number printed as text (a numeric column read as a string): what JSON would write, no more.
# float() alone also takes "1_0", " 7" and "inf", which the TypeScript client does not.
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _opt_num(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedPayload(f"{key!r} must be a number or null, got {value!r}")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise MalformedPayload(f"{key!r} must be a number or null, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise MalformedPayload(f"{key!r} must be finite, got {value!r}")
    return number


def _opt_int(payload: Mapping[str, Any], key: str) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON has one number type: 2.0 is 2
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(f"{key!r} must be an integer or null, got {value!r}")
    return value


def _opt_bool(payload: Mapping[str, Any], key: str) -> bool | None:
    value = payload.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise MalformedPayload(f"{key!r} must be true, false or null, got {value!r}")


def _int(payload: Mapping[str, Any], key: str) -> int:
    value = _opt_int(payload, key)
    if value is None:
        raise MalformedPayload(f"{key!r} must be an integer, got null")
    return value


def parse_cell(payload: Mapping[str, Any], *, seq: int | None = None) -> Cell:
    """A PAYLOAD.md Cell; `seq` overrides the cell's own (snapshots stamp the channel seq)."""
    if not isinstance(payload, Mapping):
        raise MalformedPayload(f"a cell must be an object, got {type(payload).__name__}")
    status = payload.get("status")
    if status not in STATUSES:
        raise MalformedPayload(f"'status' must be one of {STATUSES}, got {status!r}")
    ai_raw = payload.get("ai")
    ai: AiInfo | None = None
    if isinstance(ai_raw, Mapping):
        ai = AiInfo(
            model=_opt_str(ai_raw, "model"),
            feedback_at=_opt_str(ai_raw, "feedbackAt"),
            has_feedback=_opt_bool(ai_raw, "hasFeedback") or False,
        )
    elif ai_raw is not None:
        raise MalformedPayload(f"'ai' must be an object or null, got {ai_raw!r}")
    upload_count = _opt_int(payload, "uploadCount") or 0
    has_upload = _opt_bool(payload, "hasUpload")
    return Cell(
        pupil_id=_str(payload, "pupilId"),
        activity_id=_str(payload, "activityId"),
        status=cast(Status, status),
        submission_id=_opt_str(payload, "submissionId"),
        score=_opt_num(payload, "score"),
        ai_score=_opt_num(payload, "aiScore"),
        teacher_score=_opt_num(payload, "teacherScore"),
        ai=ai,
        submitted_at=_opt_str(payload, "submittedAt"),
        upload_count=upload_count,
        has_upload=upload_count > 0 if has_upload is None else has_upload,
        needs_marking=_opt_bool(payload, "needsMarking") or False,
        op=_opt_str(payload, "op"),
        source=_opt_str(payload, "source"),
        changed_at=_opt_str(payload, "changedAt"),
        seq=seq if seq is not None else (_opt_int(payload, "seq") or 0),
    )


def parse_snapshot(payload: Mapping[str, Any]) -> Snapshot:
    """The jsonb returned by public.read_assignment_results."""
    if not isinstance(payload, Mapping):
        raise MalformedPayload("read_assignment_results must return an object")
    seq = _opt_int(payload, "seq")
    activities_raw = payload.get("activities") or []
    pupils_raw = payload.get("pupilIds") or []
    cells_raw = payload.get("cells") or []
    if not isinstance(activities_raw, list) or not isinstance(pupils_raw, list):
        raise MalformedPayload("'activities' and 'pupilIds' must be arrays")
    if not isinstance(cells_raw, list):
        raise MalformedPayload("'cells' must be an array")
    activities = tuple(
        Activity(
            activity_id=_str(a, "activityId"),
            title=_opt_str(a, "title") or _str(a, "activityId"),
            kind=_opt_str(a, "kind") or "text",
            position=_opt_int(a, "position") or 0,
        )
        for a in activities_raw
    )
    return Snapshot(
        group_id=_str(payload, "groupId"),
        lesson_id=_str(payload, "lessonId"),
        seq=seq,
        activities=activities,
        pupil_ids=tuple(str(p) for p in pupils_raw),
        cells=tuple(parse_cell(c, seq=seq or 0) for c in cells_raw),
    )


# ---------------------------------------------------------------------------------------- reducer


def apply_broadcast(
    state: Matrix, event: str, payload: Mapping[str, Any]
) -> tuple[Matrix, Effects]:
    """One broadcast from the channel (the `event` and `payload` of the Realtime message)."""
    counters = replace(state.counters, received=state.counters.received + 1)
    state = replace(state, counters=counters)
    try:
        match event:
            case "result_cell":
                seq, prev = _int(payload, "seq"), _opt_int(payload, "prevSeq")
                _check_assignment(state, payload)
                cells: Sequence[Cell] = (parse_cell(payload, seq=seq),)
            case "result_cells":
                seq, prev = _int(payload, "seq"), _opt_int(payload, "prevSeq")
                _check_assignment(state, payload)
                raw = payload.get("cells")
                if not isinstance(raw, list):
                    raise MalformedPayload("'cells' must be an array")
                cells = tuple(parse_cell(c, seq=seq) for c in raw)
            case "result_refresh":
                seq, prev = _int(payload, "seq"), _opt_int(payload, "prevSeq")
                _check_assignment(state, payload)
                return _apply_refresh(state, payload, seq, prev)
            case _:
                return _ignored(state), ()
    except _Foreign:
        return _ignored(state), ()
    except MalformedPayload:
        return _request_assignment(state, "malformed")
    return _apply_cells(state, cells, seq, prev)


class _Foreign(Exception):
    """A message for another assignment (must not happen on a correct channel)."""


def _check_assignment(state: Matrix, payload: Mapping[str, Any]) -> None:
    found = payload.get("assignmentId")
    if found is not None and found != state.assignment_id:
        raise _Foreign(found)


def _ignored(state: Matrix) -> Matrix:
    return replace(state, counters=replace(state.counters, ignored=state.counters.ignored + 1))


def _sequence(state: Matrix, seq: int, prev: int | None) -> tuple[Matrix, bool, Effects]:
    """Advance lastSeq; returns (state, is_duplicate, effects of a detected gap)."""
    last = state.last_seq
    if last is not None and seq <= last:
        counters = replace(state.counters, duplicates=state.counters.duplicates + 1)
        return replace(state, counters=counters), True, ()
    expected_prev = prev if prev is not None else 0
    effects: Effects = ()
    if last is None:
        # Before the first snapshot: that snapshot must cover everything before this message.
        if expected_prev > 0:
            state = replace(state, required_seq=max(state.required_seq or 0, expected_prev))
    elif expected_prev != last:
        counters = replace(state.counters, gaps=state.counters.gaps + 1)
        state = replace(
            state, counters=counters, required_seq=max(state.required_seq or 0, expected_prev)
        )
        state, effects = _request_assignment(state, "gap")
    return replace(state, last_seq=seq), False, effects


def _apply_cells(
    state: Matrix, cells: Sequence[Cell], seq: int, prev: int | None
) -> tuple[Matrix, Effects]:
    state, duplicate, effects = _sequence(state, seq, prev)
    if duplicate:
        return state, ()
    merged = dict(state.cells)
    pupils = list(state.pupil_ids)
    known_activities = {a.activity_id for a in state.activities}
    unknown_activity = False
    for cell in cells:
        current = merged.get(cell.key)
        if current is None or current.seq < cell.seq:
            merged[cell.key] = cell
        if cell.pupil_id not in pupils:
            pupils.append(cell.pupil_id)
        if state.loaded and cell.activity_id not in known_activities:
            unknown_activity = True
    state = replace(
        state,
        cells=merged,
        pupil_ids=tuple(pupils),
        counters=replace(state.counters, applied=state.counters.applied + 1),
    )
    if unknown_activity:
        state, more = _request_assignment(state, "unknown_activity")
        effects = effects + more
    return state, effects


def _apply_refresh(
    state: Matrix, payload: Mapping[str, Any], seq: int, prev: int | None
) -> tuple[Matrix, Effects]:
    state, duplicate, effects = _sequence(state, seq, prev)
    if duplicate:
        return state, ()
    state = replace(state, counters=replace(state.counters, refreshes=state.counters.refreshes + 1))
    scope = payload.get("scope")
    raw_reason = payload.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) and raw_reason else "refresh"
    pupil = _opt_str(payload, "pupilId")
    activity = _opt_str(payload, "activityId")
    if (
        scope == "assignment"
        or scope not in SCOPES
        or (scope in ("cell", "pupil") and pupil is None)
        or (scope in ("cell", "activity") and activity is None)
    ):
        # A refresh carries no cells: a load already under way may have read before its changes,
        # so the snapshot that ends the load must be at least as new as the refresh.
        state = replace(state, required_seq=max(state.required_seq or 0, seq))
        if any(e.scope == "assignment" for e in effects):
            return state, effects
        state, more = _request_assignment(state, reason)
        return state, effects + more
    request = RefetchRequest(
        scope=cast(Scope, scope),
        reason=reason,
        pupil_id=pupil if scope in ("cell", "pupil") else None,
        activity_id=activity if scope in ("cell", "activity") else None,
    )
    return state, (*effects, request)


def _request_assignment(state: Matrix, reason: str) -> tuple[Matrix, Effects]:
    if state.assignment_refetch_pending:
        return state, ()
    return (
        replace(state, assignment_refetch_pending=True),
        (RefetchRequest(scope="assignment", reason=reason),),
    )


def start(state: Matrix, reason: str = "initial") -> tuple[Matrix, Effects]:
    """The first load, or a reload after a reconnect (messages may have been missed)."""
    return _request_assignment(state, reason)


def _in_scope(request: RefetchRequest, pupil_id: str, activity_id: str) -> bool:
    match request.scope:
        case "assignment":
            return True
        case "pupil":
            return pupil_id == request.pupil_id
        case "activity":
            return activity_id == request.activity_id
        case "cell":
            return pupil_id == request.pupil_id and activity_id == request.activity_id


def apply_snapshot(
    state: Matrix, snapshot: Snapshot, request: RefetchRequest
) -> tuple[Matrix, Effects]:
    """A refetch result for `request`'s scope. Only an assignment snapshot moves lastSeq."""
    snap_seq = snapshot.seq or 0
    if request.scope != "assignment":
        merged = dict(state.cells)
        for cell in snapshot.cells:
            if not _in_scope(request, cell.pupil_id, cell.activity_id):
                continue
            current = merged.get(cell.key)
            if current is None or current.seq <= snap_seq:
                merged[cell.key] = cell
        pupils = list(state.pupil_ids)
        pupils.extend(p for p in snapshot.pupil_ids if p not in pupils)
        return replace(state, cells=merged, pupil_ids=tuple(pupils)), ()
    activities = tuple(sorted(snapshot.activities, key=lambda a: (a.position, a.activity_id)))
    activity_ids = {a.activity_id for a in activities}
    # Cells changed by messages newer than the snapshot stay; everything else is the snapshot's.
    newer = {k: c for k, c in state.cells.items() if c.seq > snap_seq and k[1] in activity_ids}
    cells = {c.key: c for c in snapshot.cells}
    cells.update(newer)
    pupils = list(snapshot.pupil_ids)
    pupils.extend(p for p, _ in newer if p not in pupils)
    state = replace(
        state,
        activities=activities,
        pupil_ids=tuple(pupils),
        cells=cells,
        last_seq=max(state.last_seq or 0, snap_seq),
        loaded=True,
        assignment_refetch_pending=False,
    )
    if state.required_seq is not None and snap_seq < state.required_seq:
        # The snapshot predates the gap it was meant to fill: ask again.
        return _request_assignment(state, "gap_not_covered")
    return replace(state, required_seq=None), ()
