"""The daemon's side of the outbox: stage changes into sequenced messages, hand them out, ack them.

Two durable stages (sql/migrations/0004_outbox.sql):
1. `outbox`: raw changes (ids, op, source), written by the triggers in the writer's transaction.
2. `outbox_messages`: built messages with their channel seq, written by `stage_batch` in the
   transaction that deletes the raw rows they carry, deleted by `ack` once Realtime accepted them.
A crash at any point loses nothing, `seq` never has a gap, and a redelivered message is
byte-for-byte the one sent before (same eventId and seq), so clients drop it as a duplicate.

Staging commits asynchronously (`synchronous_commit = off`): the commit is in PostgreSQL's WAL
buffers when it returns, which a crash of the daemon cannot undo, and the daemon publishes the
messages from memory without waiting for a flush. Only a crash of the server itself can lose the
last moments of staging; then the same seqs could be staged again with other content. So the
daemon records the server instance (its start time, and the time of its last crash recovery), and
when it sees a new one it advances every channel's seq by 10,000 before staging anything
(`check_server_restart`): clients see the gap and refetch.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import asyncpg
import orjson

from daemon.log import get_logger
from daemon.pipeline.payload import (
    ChannelItem,
    NotAnObject,
    PlannedMessage,
    open_cell,
    plan_channel,
    rejected_refresh,
)
from daemon.pipeline.publisher import Publishable
from daemon.sqlfiles import query

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

log = get_logger(__name__)

NOTIFY_CHANNEL = "results_realtime_v1"
"""The doorbell the triggers ring (an empty payload: the outbox is the truth)."""

_STAGE_LOCK_KEY = 0x5252_5354_4147  # "RRSTAG": serializes staging across sessions
_MAX_RESPONSE_BODY = 10_000  # characters of a rejected response kept in dead_letters


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    id: int  # outbox_messages.id
    channel: str  # bare topic 'assignment_results:G:L'
    event: Literal["result_cell", "result_cells", "result_refresh"]
    payload_json: bytes  # compact JSON, complete (seq, prevSeq, eventId): sized, stored and sent
    seq: int
    oldest_change_at: datetime  # earliest change carried (for the commit-to-publish lag)
    cell_count: int

    @property
    def payload(self) -> dict[str, Any]:
        """Decoded on demand only (tests, logs): the pipeline itself moves the bytes."""
        return cast(dict[str, Any], orjson.loads(self.payload_json))

    @property
    def payload_bytes(self) -> int:
        return len(self.payload_json)


@dataclass(frozen=True, slots=True)
class StageResult:
    claimed: int  # outbox rows claimed
    staged: int  # messages written
    cells: int  # cells carried
    refreshes: int  # result_refresh messages among them
    skipped: int  # keys dropped (no channel: unmappable, or unenrichable with unknown channel)
    messages: tuple[OutgoingMessage, ...] = field(default=(), repr=False)  # as staged, in id order


@dataclass(frozen=True, slots=True)
class _KeyChange:
    """All claimed changes of one (activity, pupil) key: the last one wins."""

    activity_id: str
    pupil_id: str
    op: str
    source: str
    changed_at: str  # of the last change, as the payloads' ISO-8601 text
    oldest_change_at: datetime
    first_id: int


@dataclass(slots=True)
class _Claim:
    """What the database half of a staging returned, ready for planning."""

    claimed: int  # outbox rows claimed
    items: list[ChannelItem] = field(default_factory=list)  # enriched (or failed) cells
    skipped: list[str] = field(default_factory=list)  # 'activity/pupil' keys with no channel
    last_seqs: dict[str, int] = field(default_factory=dict)  # of the items' channels, 0 if new


@dataclass(frozen=True, slots=True)
class FlagsState:
    """The feature flag, and the flags' bits in runtime_state and in the triggers' copy."""

    enabled: bool
    row_bits: int
    copy_bits: int

    @property
    def copy_in_line(self) -> bool:
        return self.row_bits == self.copy_bits


class _EnrichFailed(Exception):
    """The one-call enrichment raised (nothing was staged)."""


class Store:
    """Every database operation of the pipeline; one pool, one short transaction per call."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_payload_bytes: int,
        max_messages_per_channel: int = 10,
    ) -> None:
        if max_payload_bytes < 1024:
            raise ValueError("max_payload_bytes must be at least 1024")
        if max_messages_per_channel < 1:
            raise ValueError("max_messages_per_channel must be at least 1")
        self._pool = pool
        self._max_payload_bytes = max_payload_bytes
        self._max_messages_per_channel = max_messages_per_channel

    # ------------------------------------------------------------------------------- staging

    @contextlib.asynccontextmanager
    async def _connection(self, conn: _Conn | None) -> AsyncIterator[_Conn]:
        """The caller's dedicated connection, or one from the pool for this call."""
        if conn is not None:
            yield conn
            return
        async with self._pool.acquire() as pooled:
            yield pooled

    async def stage_batch(
        self,
        limit: int,
        *,
        conn: _Conn | None = None,
        ack: Sequence[int] = (),
        disarm: bool = False,
    ) -> StageResult:
        """Claim up to `limit` raw changes and stage them as messages, in one transaction.

        `ack` (messages Realtime accepted) and `disarm` ride along with the first statement, so
        the busy loop spends no extra round trip or commit on them. The staged messages come back,
        encoded, in `messages`: the caller publishes them without reading them back.
        Two autocommit round trips (sql/migrations/0008_optimistic_staging.sql): read and enrich,
        then commit the messages if nobody staged the same rows or channels meanwhile. When the
        enrichment raises or another session got in between, the careful path stages the same
        rows in one locked transaction instead.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self._connection(conn) as c:
            try:
                return await self._stage_optimistically(c, limit, list(ack), disarm)
            except _EnrichFailed:
                pass  # nothing was staged: again, isolating the keys that fail
            except asyncpg.SerializationError as exc:
                log.info("store.stage_conflict", detail=str(exc), action="staging carefully")
            return await self._stage_carefully(c, limit, list(ack), disarm)

    async def _stage_optimistically(
        self, conn: _Conn, limit: int, ack: list[int], disarm: bool
    ) -> StageResult:
        try:
            rows = await conn.fetch(query("store_peek_cells"), limit, ack, disarm)
        except asyncpg.QueryCanceledError:
            raise
        except asyncpg.PostgresError as exc:
            raise _EnrichFailed from exc
        if not rows:
            return StageResult(claimed=0, staged=0, cells=0, refreshes=0, skipped=0)
        read_ids: list[int] = rows[0]["read_ids"]
        claim = _claim_from_rows(rows, claimed=len(read_ids))
        planned = self._plan(claim.items)
        del claim.items[:]
        shells, texts, advanced = _number(planned, claim.last_seqs)
        inserted = await conn.fetch(
            query("store_commit_stage"),
            _STAGE_LOCK_KEY,
            read_ids,
            [channel for channel, _ in advanced],
            [claim.last_seqs[channel] for channel, _ in advanced],
            [last for _, last in advanced],
            *_message_columns(shells, texts),
        )
        return self._result(claim, _with_ids(shells, inserted))

    def _result(self, claim: _Claim, messages: tuple[OutgoingMessage, ...]) -> StageResult:
        if claim.skipped:
            log.info(
                "store.keys_skipped",
                count=len(claim.skipped),
                sample=claim.skipped[:5],
                reason="no assignment channel for these cells",
            )
        return StageResult(
            claimed=claim.claimed,
            staged=len(messages),
            cells=sum(m.cell_count for m in messages),
            refreshes=sum(1 for m in messages if m.event == "result_refresh"),
            skipped=len(claim.skipped),
            messages=messages,
        )

    async def _stage_carefully(
        self, conn: _Conn, limit: int, ack: list[int], disarm: bool
    ) -> StageResult:
        """One transaction under the staging lock; the enrichment isolates the keys that fail."""
        async with conn.transaction():
            claim = await self._claim_carefully(conn, limit, ack, disarm)
            if not claim.claimed:
                return StageResult(claimed=0, staged=0, cells=0, refreshes=0, skipped=0)
            planned = self._plan(claim.items)
            del claim.items[:]  # a claim can be 10,000 cells: hold only what the next step needs
            messages = await self._write(conn, planned, claim.last_seqs) if planned else ()
        return self._result(claim, messages)

    async def _claim_carefully(
        self, conn: _Conn, limit: int, ack: list[int], disarm: bool
    ) -> _Claim:
        """The same claim, then an enrichment that isolates the keys that fail (savepoints)."""
        await conn.execute(query("store_stage_lock"), _STAGE_LOCK_KEY)
        rows = await conn.fetch(query("store_claim_changes"), limit, ack, disarm)
        claim = _Claim(claimed=rows[0]["claimed"] if rows else 0)
        changes = [
            _KeyChange(
                activity_id=r["activity_id"],
                pupil_id=r["pupil_id"],
                op=r["op"],
                source=r["source"],
                changed_at=r["changed_at_text"],
                oldest_change_at=r["oldest_change_at"],
                first_id=r["first_id"],
            )
            for r in rows
        ]
        del rows[:]
        items, skipped = await self._enrich(conn, changes)
        claim.items.extend(items)
        claim.skipped.extend(f"{c.activity_id}/{c.pupil_id}" for c in skipped)
        channels = sorted({item.channel for item in items})
        if channels:
            seqs = await conn.fetch(query("store_channel_seqs"), channels)
            claim.last_seqs.update({c: 0 for c in channels})
            claim.last_seqs.update({r["channel"]: r["last_seq"] for r in seqs})
        return claim

    async def check_server_restart(self, *, conn: _Conn | None = None) -> bool:
        """Before staging on a new connection: leave a seq gap on every channel after a restart.

        Synchronous commit on purpose: the gap must be durable before anything is staged after it.
        True when the gap was made (a restart since the last check; never on the first check).
        """
        async with self._connection(conn) as c, c.transaction():
            await c.execute(query("store_stage_lock"), _STAGE_LOCK_KEY)
            await c.execute(query("store_sync_commit"))
            row = await c.fetchrow(query("store_server_restart"))
            if row is None or row["previous"] is None:
                return False
            await c.execute(query("store_skip_seq"))
        log.warning(
            "store.server_restarted",
            previous_instance=row["previous"],
            action="skipped 10,000 seqs on every channel: clients refetch once",
        )
        return True

    async def _enrich(
        self, conn: _Conn, changes: Sequence[_KeyChange]
    ) -> tuple[list[ChannelItem], list[_KeyChange]]:
        """Enrich with savepoints, bisecting to isolate the keys whose enrichment raises."""
        by_key = {(c.activity_id, c.pupil_id): c for c in changes}
        rows, failed = await self._cells(conn, changes)
        items: list[ChannelItem] = []
        found: set[tuple[str, str]] = set()
        for row in rows:
            change = by_key[(row["activity_id"], row["pupil_id"])]
            found.add((change.activity_id, change.pupil_id))
            items.append(
                _item(
                    row,
                    oldest_change_at=change.oldest_change_at,
                    order=change.first_id,
                    change=(change.op, change.source, change.changed_at),
                )
            )
        if failed:
            log.warning(
                "store.keys_unenrichable",
                count=len(failed),
                sample=[f"{c.activity_id}/{c.pupil_id}" for c in failed[:5]],
            )
        failed_items, no_channel = await self._channels(conn, failed)
        items.extend(failed_items)
        failed_keys = {(c.activity_id, c.pupil_id) for c in failed}
        skipped = [
            c
            for c in changes
            if (c.activity_id, c.pupil_id) not in found
            and (c.activity_id, c.pupil_id) not in failed_keys
        ]
        return items, skipped + no_channel

    async def _cells(
        self, conn: _Conn, changes: Sequence[_KeyChange], total: int | None = None
    ) -> tuple[list[asyncpg.Record], list[_KeyChange]]:
        total = len(changes) if total is None else total
        try:
            async with conn.transaction():  # a savepoint: a failure keeps the claim
                rows = await conn.fetch(
                    query("store_cell_states"),
                    [c.activity_id for c in changes],
                    [c.pupil_id for c in changes],
                )
            return list(rows), []
        except asyncpg.QueryCanceledError:
            raise  # a timeout or cancel is about the whole call, not one key: retry the batch
        except asyncpg.PostgresError as exc:
            if len(changes) == 1:
                return [], [changes[0]]
            if len(changes) == total:  # one line per batch, however many keys turn out bad
                log.warning(
                    "store.enrich_failed",
                    keys=total,
                    error=f"{type(exc).__name__}: {exc}",
                    action="isolating the keys that fail; they become result_refresh messages",
                )
            middle = len(changes) // 2
            left_rows, left_failed = await self._cells(conn, changes[:middle], total)
            right_rows, right_failed = await self._cells(conn, changes[middle:], total)
            return left_rows + right_rows, left_failed + right_failed

    async def _channels(
        self, conn: _Conn, failed: Sequence[_KeyChange]
    ) -> tuple[list[ChannelItem], list[_KeyChange]]:
        """The channels of keys that could not be enriched, to tell their clients to refetch."""
        if not failed:
            return [], []
        try:
            async with conn.transaction():
                rows = await conn.fetch(
                    query("store_channels_for_keys"),
                    [c.activity_id for c in failed],
                    [c.pupil_id for c in failed],
                )
        except asyncpg.QueryCanceledError:
            raise
        except asyncpg.PostgresError as exc:
            log.warning(
                "store.channels_failed", count=len(failed), error=f"{type(exc).__name__}: {exc}"
            )
            return [], list(failed)
        by_key = {(c.activity_id, c.pupil_id): c for c in failed}
        items = []
        for row in rows:
            change = by_key[(row["activity_id"], row["pupil_id"])]
            items.append(
                _item(row, oldest_change_at=change.oldest_change_at, order=change.first_id)
            )
        known = {(i.activity_id, i.pupil_id) for i in items}
        return items, [c for c in failed if (c.activity_id, c.pupil_id) not in known]

    def _plan(self, items: Sequence[ChannelItem]) -> list[PlannedMessage]:
        per_channel: dict[str, list[ChannelItem]] = defaultdict(list)
        for item in items:
            per_channel[item.channel].append(item)
        planned: list[PlannedMessage] = []
        # Channels in the order of their first change, messages of a channel in seq order.
        for channel_items in sorted(
            per_channel.values(), key=lambda its: min(i.order for i in its)
        ):
            planned.extend(
                plan_channel(
                    channel_items,
                    max_payload_bytes=self._max_payload_bytes,
                    max_messages=self._max_messages_per_channel,
                )
            )
        return planned

    async def _write(
        self, conn: _Conn, planned: list[PlannedMessage], last_seqs: Mapping[str, int]
    ) -> tuple[OutgoingMessage, ...]:
        """The careful path's insert, under the lock it already holds."""
        shells, texts, advanced = _number(planned, last_seqs)
        inserted = await conn.fetch(
            query("store_insert_messages"),
            *_message_columns(shells, texts),
            [channel for channel, _ in advanced],
            [last for _, last in advanced],
        )
        return _with_ids(shells, inserted)

    # ------------------------------------------------------------------------------ publishing

    async def pending(
        self, limit: int, *, after_id: int = 0, conn: _Conn | None = None
    ) -> list[OutgoingMessage]:
        """Staged messages with an id above `after_id`, oldest first (seq order per channel).

        For catching up (a new leadership term, after a failure): the busy loop publishes what it
        just staged from memory. The stored text is the compact JSON as first sent.
        """
        async with self._connection(conn) as c:
            rows = await c.fetch(query("store_pending"), limit, after_id)
        return [
            OutgoingMessage(
                id=row["id"],
                channel=row["channel"],
                event=cast(Any, row["event"]),
                payload_json=row["payload"].encode(),
                seq=row["seq"],
                oldest_change_at=row["oldest_change_at"],
                cell_count=row["cell_count"],
            )
            for row in rows
        ]

    async def ack(self, ids: Sequence[int], *, conn: _Conn | None = None) -> None:
        """Realtime accepted these: forget them. Losing an ack in a crash only redelivers."""
        if not ids:
            return
        async with self._connection(conn) as c, c.transaction():
            await c.execute(query("store_async_commit"))
            await c.execute(query("store_ack"), list(ids))

    async def mark_attempt(self, ids: Sequence[int]) -> None:
        """Count a failed publish attempt (kept with the message, and in its dead letter)."""
        if ids:
            await self._pool.execute(query("store_mark_attempt"), list(ids))

    async def dead_letter(
        self, messages: Sequence[Publishable], *, status: int | None, body: str
    ) -> tuple[OutgoingMessage, ...]:
        """Realtime refused these for good: move them aside for a person to look at, and make
        sure their clients read the cells they carried again, in the same transaction.

        A later message on the channel does that by itself: its prevSeq shows the clients the
        refused seq's gap, and they refetch the assignment. Where none is staged, a
        `result_refresh` of the assignment is staged, and returned for the caller to publish;
        else the cells would stay stale on every page until the channel's next change. A
        refused refresh is followed by nothing: a refresh is small, so Realtime refusing it
        means it refuses the channel, and would refuse the next one too.
        """
        if not messages:
            return ()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(query("store_stage_lock"), _STAGE_LOCK_KEY)
            await conn.execute(
                query("store_dead_letter"),
                [m.id for m in messages],
                status,
                body[:_MAX_RESPONSE_BODY],
            )
            cells = [m for m in messages if m.event != "result_refresh"]
            if not cells:
                return ()
            followed = await conn.fetch(
                query("store_channels_staged_after"),
                [m.channel for m in cells],
                [m.seq for m in cells],
            )
            gap_shown = {r["channel"] for r in followed}
            follow = {
                m.channel: rejected_refresh(m.channel, m.oldest_change_at)
                for m in cells
                if m.channel not in gap_shown
            }
            if not follow:
                return ()
            channels = sorted(follow)
            last_seqs = {c: 0 for c in channels}
            rows = await conn.fetch(query("store_channel_seqs"), channels)
            last_seqs.update({r["channel"]: r["last_seq"] for r in rows})
            refreshes = await self._write(conn, [follow[c] for c in channels], last_seqs)
        log.info(
            "store.refresh_after_rejection",
            messages=[f"{m.channel}#{m.seq}" for m in refreshes],
            note="clients refetch the assignment whose message Realtime refused",
        )
        return refreshes

    # ------------------------------------------------------------------------------ monitoring

    async def refresh_plans(self, conn: _Conn) -> None:
        """See daemon/pipeline/replan.py: plan the connection's statements anew."""
        await conn.execute(query("store_refresh_plans"))

    async def vacuum_outbox(self) -> None:
        """See daemon/pipeline/vacuum.py. Not in a transaction: VACUUM cannot run in one."""
        await self._pool.execute(query("store_vacuum_outbox"))

    async def outbox_depth(self, *, conn: _Conn | None = None) -> int:
        async with self._connection(conn) as c:
            return cast(int, await c.fetchval(query("store_outbox_depth")))

    async def outbox_writers_in_flight(self, *, conn: _Conn | None = None) -> bool:
        """Whether an open transaction has written outbox rows (its commit may ring no bell)."""
        async with self._connection(conn) as c:
            return bool(await c.fetchval(query("store_outbox_writers")))

    async def pending_depth(self, *, conn: _Conn | None = None) -> int:
        async with self._connection(conn) as c:
            return cast(int, await c.fetchval(query("store_pending_depth")))

    async def oldest_waiting_age_s(self) -> float | None:
        age = await self._pool.fetchval(query("store_oldest_waiting_age"))
        return None if age is None else max(0.0, float(age))

    # ---------------------------------------------------------------------- flag and doorbell

    async def flags_state(self, *, conn: _Conn | None = None) -> FlagsState:
        async with self._connection(conn) as c:
            row = await c.fetchrow(query("store_flags_state"))
        assert row is not None
        return FlagsState(
            enabled=row["enabled"], row_bits=row["row_bits"], copy_bits=row["copy_bits"]
        )

    async def rewrite_flags(self, *, conn: _Conn | None = None) -> None:
        async with self._connection(conn) as c:
            await c.execute(query("store_rewrite_flags"))

    async def set_enabled(self, enabled: bool) -> None:
        """Mirror the feature flag: the triggers record changes only while it is on."""
        await self._pool.execute(query("store_set_enabled"), enabled)

    async def arm_doorbell(self, *, conn: _Conn | None = None, ack: Sequence[int] = ()) -> None:
        """Idle: ask the triggers to NOTIFY again (and forget what Realtime accepted last)."""
        await self._set_doorbell(True, conn, ack)

    async def disarm_doorbell(self, *, conn: _Conn | None = None) -> None:
        """Busy (polling): spare the writers the cluster-wide NOTIFY lock.

        The work loop disarms in its first staging transaction instead (`stage_batch(disarm=)`).
        """
        await self._set_doorbell(False, conn, ())

    async def _set_doorbell(self, armed: bool, conn: _Conn | None, ack: Sequence[int]) -> None:
        async with self._connection(conn) as c, c.transaction():
            await c.execute(query("store_async_commit"))
            if ack:
                await c.execute(query("store_ack"), list(ack))
            await c.execute(query("store_set_doorbell"), armed)


def _claim_from_rows(rows: list[asyncpg.Record], *, claimed: int) -> _Claim:
    """The enriched rows of peek_cells_v1, ready for planning."""
    claim = _Claim(claimed=claimed)
    rows.reverse()
    while rows:  # popped, so each record is freed as soon as its cell is decoded
        row = rows.pop()
        channel = row["channel"]
        if channel is None:
            claim.skipped.append(f"{row['activity_id']}/{row['pupil_id']}")
            continue
        claim.last_seqs[channel] = row["last_seq"] or 0
        claim.items.append(
            _item(
                row,
                oldest_change_at=row["oldest_change_at"],
                order=row["first_id"],
                change=(row["op"], row["source"], row["changed_at"]),
            )
        )
    return claim


def _number(
    planned: list[PlannedMessage], last_seqs: Mapping[str, int]
) -> tuple[list[OutgoingMessage], list[str], list[tuple[str, int]]]:
    """Number the messages after each channel's last seq and encode each payload once.

    Returns the messages (id 0 until inserted), their JSON texts, and every channel that got
    messages with its new last seq, in channel order (the order its row is locked in).
    """
    next_seq = {channel: seq + 1 for channel, seq in last_seqs.items()}
    shells: list[OutgoingMessage] = []
    texts: list[str] = []
    pending = deque(planned)
    planned.clear()  # the caller's list: from here on the cells live only in `pending`
    while pending:  # popped, so each message's cell dicts are freed once it is encoded
        message = pending.popleft()
        seq = next_seq[message.channel]
        next_seq[message.channel] = seq + 1
        encoded = message.encode(seq)
        texts.append(encoded.decode())
        shells.append(
            OutgoingMessage(
                id=0,
                channel=message.channel,
                event=message.event,
                payload_json=encoded,
                seq=seq,
                oldest_change_at=message.oldest_change_at,
                cell_count=len(message.cells),
            )
        )
    advanced = sorted((c, next_seq[c] - 1) for c in next_seq if next_seq[c] - 1 > last_seqs[c])
    return shells, texts, advanced


def _message_columns(shells: Sequence[OutgoingMessage], texts: list[str]) -> tuple[list[Any], ...]:
    return (
        [m.channel for m in shells],
        [m.seq for m in shells],
        [m.event for m in shells],
        texts,
        [m.oldest_change_at for m in shells],
        [m.cell_count for m in shells],
    )


def _with_ids(
    shells: Sequence[OutgoingMessage], inserted: Sequence[asyncpg.Record]
) -> tuple[OutgoingMessage, ...]:
    ids = {(r["channel"], r["seq"]): r["id"] for r in inserted}
    messages = [dataclasses.replace(m, id=ids[(m.channel, m.seq)]) for m in shells]
    messages.sort(key=lambda m: m.id)
    return tuple(messages)


def _item(
    row: asyncpg.Record,
    *,
    oldest_change_at: datetime,
    order: int,
    change: tuple[str, str, str] | None = None,
) -> ChannelItem:
    """The row's cell, ready for planning: its state completed with `change` (op, source,
    changedAt), or no cell (a refresh) without a change or when the state is no JSON object."""
    group_id, lesson_id = row["group_id"], row["lesson_id"]
    activity_id, pupil_id = row["activity_id"], row["pupil_id"]
    cell = None
    if change is not None:
        op, source, changed_at = change
        try:
            cell = open_cell(
                row["state"],
                group_id=group_id,
                lesson_id=lesson_id,
                activity_id=activity_id,
                pupil_id=pupil_id,
                op=op,
                source=source,
                changed_at=changed_at,
            )
        except NotAnObject as exc:
            log.warning(
                "store.cell_state_invalid",
                key=f"{activity_id}/{pupil_id}",
                error=str(exc),
                action="a result_refresh for this cell",
            )
    return ChannelItem(
        row["channel"], group_id, lesson_id, activity_id, pupil_id, cell, oldest_change_at, order
    )
