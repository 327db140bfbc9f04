"""A results subscription: keeps a `Matrix` current from `assignment_results:{group}:{lesson}`.

Built on the `realtime` client. One task owns the matrix and applies every input in order
(broadcasts, refetch results, reload requests) through the pure reducer; callbacks of the realtime
client only enqueue. The connection is supervised here rather than by realtime-py's own
reconnect (which gives up after a few tries): after CHANNEL_ERROR, CLOSED, a join timeout or a
dropped socket the client is torn down, rebuilt after a jittered exponential backoff, and once
SUBSCRIBED again the whole assignment is refetched (messages may have been missed meanwhile).
A permanent refusal of the join (`Unauthorized`: the channel's RLS policy does not let this user
read it) is not retried: the status becomes "denied" and `run()` raises `JoinDeniedError`; so is
a socket refused with HTTP 401 (the key in the URL is invalid or expired; `ConnectDeniedError`). The
TypeScript client does the same (clients/js/src/subscribe.ts; shared case table
clients/js/test/fixtures/join-refusals.json).
A refetch the database refuses for good (`PermanentRefetchError`: not a teacher of the group, no
such assignment, no such function) also ends it, status "denied": every other refetch error is
retried with backoff, which only suits a transient one (a lost connection).
With realtime switched off there is no subscription: the matrix is refetched every poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates
from websockets.exceptions import InvalidStatus

from daemon.client import matrix
from daemon.client.matrix import Matrix, RefetchRequest, Snapshot
from daemon.client.refetch import PermanentRefetchError, Refetcher
from daemon.errors import ResultsRealtimeError
from daemon.log import get_logger

log = get_logger(__name__)

ConnectionState = Literal["connecting", "subscribed", "reconnecting", "polling", "denied", "closed"]

# Join refusals that a retry cannot cure: Realtime's RLS read check said no for this user. Every
# other refusal (rate limits, an unreachable project database, an expired token that a refresh
# replaces, a timeout) is transient and retried with backoff.
PERMANENT_JOIN_ERRORS = frozenset({"Unauthorized"})


class RealtimeRefusedError(ResultsRealtimeError):
    """Realtime refused this client for good (exit code 4: Realtime refusing); not retried."""

    exit_code = 4

    def __init__(self, message: str, *, channel: str, reason: str) -> None:
        super().__init__(message)
        self.channel = channel
        self.reason = reason


class JoinDeniedError(RealtimeRefusedError):
    """The channel's policy refused the join: the token's user may not read the channel."""

    def __init__(self, channel: str, reason: str, *, hint: str = "") -> None:
        super().__init__(
            f"Realtime refused the join of {channel} ({reason}); not retried, as the channel's "
            f"policy does not let the token's user read it{'. ' + hint if hint else ''}",
            channel=channel,
            reason=reason,
        )


class ConnectDeniedError(RealtimeRefusedError):
    """Realtime refused the socket itself (HTTP 401): the key in the URL is wrong or expired.

    The key is the same on every attempt, so a retry can only be refused again.
    """

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(
            f"Realtime refused the connection (HTTP 401: {reason}) before {channel} could be "
            "joined; not retried, as the same key would be refused again. Pass a valid, "
            "unexpired key (--token / --apikey, or --teacher to mint a token)",
            channel=channel,
            reason=reason,
        )


def upgrade_refusal(error: BaseException) -> str | None:
    """The reason of a refused WebSocket upgrade that a retry cannot cure (401), else None."""
    if not isinstance(error, InvalidStatus) or error.response.status_code != 401:
        return None
    body = error.response.body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        payload = json.loads(body)
        if isinstance(payload, dict):
            for key in ("error", "message"):
                if isinstance(payload.get(key), str):
                    return str(payload[key])
    return body or "Unauthorized"


def refusal_reason(error: BaseException | str | None) -> str | None:
    """The `reason` of a join error reply; realtime-py passes the reply as JSON text."""
    if error is None:
        return None
    text = str(error)
    with contextlib.suppress(ValueError):
        payload = json.loads(text)
        if isinstance(payload, dict) and isinstance(payload.get("reason"), str):
            return str(payload["reason"])
    return text


def is_permanent_refusal(reason: str) -> bool:
    """True for a join refusal a retry cannot cure (`<Code>: <message>`, the code decides)."""
    code = reason.split(":", 1)[0].strip()
    return code in PERMANENT_JOIN_ERRORS


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    realtime_url: str  # the Supabase project URL (http://host:port); /realtime/v1 is appended
    access_token: str  # the teacher's JWT (joins the private channel)
    group_id: str
    lesson_id: str
    apikey: str | None = None  # the project's anon key; defaults to access_token (local hub)
    enabled: bool = True  # RESULTS_REALTIME_ENABLED
    poll_interval_s: float = 5.0
    rejoin_initial_backoff_s: float = 0.25
    rejoin_max_backoff_s: float = 10.0
    refetch_max_backoff_s: float = 10.0
    join_timeout_s: int = 10
    queue_size: int = 10_000


@dataclass(frozen=True, slots=True)
class ClientStatus:
    connection: ConnectionState = "connecting"
    messages_received: int = 0
    refetching: int = 0
    refetches_done: int = 0
    subscribed_count: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Broadcast:
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Fetched:
    request: RefetchRequest
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class _Reload:
    reason: str
    force: bool


_Input = _Broadcast | _Fetched | _Reload


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Full-jitter exponential backoff: never synchronised across many clients."""
    ceiling: float = min(cap, initial * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)


def _request_key(request: RefetchRequest) -> tuple[str, str | None, str | None]:
    return (request.scope, request.pupil_id, request.activity_id)


class ResultsSubscription:
    """Run with `await sub.run()` inside a TaskGroup; cancel it to unsubscribe and stop."""

    def __init__(
        self,
        config: SubscriptionConfig,
        refetcher: Refetcher,
        *,
        on_change: Callable[[Matrix, ClientStatus], None] | None = None,
    ) -> None:
        self.config = config
        self.matrix = matrix.empty(config.group_id, config.lesson_id)
        self._live = config.enabled and matrix.has_channel(config.group_id)
        self.status = ClientStatus(connection="connecting" if self._live else "polling")
        self._refetcher = refetcher
        self._on_change = on_change
        self._inputs: asyncio.Queue[_Input] = asyncio.Queue(maxsize=config.queue_size)
        self._overflowed = False
        self._changed = asyncio.Condition()
        self._in_flight: set[tuple[str, str | None, str | None]] = set()
        self._rerun: dict[tuple[str, str | None, str | None], RefetchRequest] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._log = log.bind(channel=self.matrix.channel)

    # ------------------------------------------------------------------------------ public API

    async def run(self) -> None:
        """Until cancelled. Cancelling leaves the channel and closes the socket.

        Raises RealtimeRefusedError (status "denied") when the join or the socket is refused
        for good, and PermanentRefetchError (status "denied") when a refetch is.
        """
        self._log.info("client.started", enabled=self.config.enabled)
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._consume(), name="client.consume")
                if self._live:
                    tasks.create_task(self._supervise(), name="client.supervise")
                else:
                    self._log.info(
                        "client.polling",
                        interval_s=self.config.poll_interval_s,
                        reason="the group id has ':': no channel"
                        if self.config.enabled
                        else "realtime is off",
                    )
                    tasks.create_task(self._poll(), name="client.poll")
        except* (RealtimeRefusedError, PermanentRefetchError) as refused:
            raise refused.exceptions[0] from None  # the first: one refusal says why
        finally:
            self._tasks = None
            if self.status.connection != "denied":
                self._set_status(connection="closed")
            self._log.info("client.stopped", connection=self.status.connection)

    async def wait_until(
        self, predicate: Callable[[Matrix, ClientStatus], bool], within_s: float
    ) -> Matrix:
        """Waits for a state (tests, the demo); raises TimeoutError with the state it reached."""
        async with self._changed:
            try:
                async with asyncio.timeout(within_s):
                    await self._changed.wait_for(lambda: predicate(self.matrix, self.status))
            except TimeoutError:
                raise TimeoutError(
                    f"condition not reached within {within_s}s; last_seq={self.matrix.last_seq} "
                    f"status={self.status}"
                ) from None
        return self.matrix

    # ------------------------------------------------------------------------------ the matrix

    def _enqueue(self, item: _Input) -> None:
        try:
            self._inputs.put_nowait(item)
        except asyncio.QueueFull:
            # Never grow without bound: drop, then catch up with one refetch once drained.
            if not self._overflowed:
                self._log.warning("client.queue_overflow", size=self.config.queue_size)
            self._overflowed = True

    async def _consume(self) -> None:
        while True:
            item = await self._inputs.get()
            effects: matrix.Effects = ()
            match item:
                case _Broadcast(event=event, payload=payload):
                    self._set_status(messages_received=self.status.messages_received + 1)
                    before = self.matrix.counters
                    self.matrix, effects = matrix.apply_broadcast(self.matrix, event, payload)
                    self._log.debug("client.message", broadcast_event=event, seq=payload.get("seq"))
                    self._log_counters(before, self.matrix, event, payload)
                case _Fetched(request=request, snapshot=snapshot):
                    self.matrix, effects = matrix.apply_snapshot(self.matrix, snapshot, request)
                case _Reload(reason=reason, force=force):
                    self.matrix, effects = matrix.start(self.matrix, reason)
                    if not effects and (force or not self._in_flight_assignment()):
                        effects = (RefetchRequest(scope="assignment", reason=reason),)
            if self._overflowed and self._inputs.empty():
                self._overflowed = False
                self.matrix, more = matrix.start(self.matrix, "overflow")
                effects = effects + (more or (RefetchRequest("assignment", "overflow"),))
            for request in effects:
                self._refetch(request)
            await self._notify()

    def _log_counters(
        self, before: matrix.Counters, after: Matrix, event: str, payload: dict[str, Any]
    ) -> None:
        seq = payload.get("seq")
        if after.counters.duplicates > before.duplicates:
            self._log.debug("client.duplicate_ignored", seq=seq, last_seq=after.last_seq)
        if after.counters.gaps > before.gaps:
            self._log.info("client.gap_detected", seq=seq, prev_seq=payload.get("prevSeq"))
        if after.counters.ignored > before.ignored:
            self._log.info("client.message_ignored", broadcast_event=event)

    def _in_flight_assignment(self) -> bool:
        return any(key[0] == "assignment" for key in self._in_flight)

    def _refetch(self, request: RefetchRequest) -> None:
        key = _request_key(request)
        if key in self._in_flight:
            # Nor may a rejoin or a refresh be served by a read that started before it: that read
            # may predate the disconnect or the refresh's change. Once it ends, one more runs.
            self._rerun[key] = request
            return
        if self._tasks is None:
            return
        self._in_flight.add(key)
        self._set_status(refetching=len(self._in_flight))
        self._tasks.create_task(self._run_refetch(request), name=f"client.refetch.{request.scope}")

    async def _run_refetch(self, request: RefetchRequest) -> None:
        key = _request_key(request)
        attempt = 0
        try:
            while True:
                self._log.info(
                    "client.refetch",
                    scope=request.scope,
                    reason=request.reason,
                    pupil_id=request.pupil_id,
                    activity_id=request.activity_id,
                    attempt=attempt,
                )
                try:
                    snapshot = await self._refetcher.fetch(
                        self.config.group_id, self.config.lesson_id, request
                    )
                except PermanentRefetchError as exc:
                    self._log.error(
                        "client.refetch_failed",
                        scope=request.scope,
                        error=str(exc),
                        error_type=type(exc).__name__,
                        permanent=True,
                    )
                    self._set_status(connection="denied", last_error=f"refetch: {exc}")
                    raise  # the finally below notifies
                except Exception as exc:
                    delay = backoff_delay(attempt, 0.2, self.config.refetch_max_backoff_s)
                    self._log.warning(
                        "client.refetch_failed",
                        scope=request.scope,
                        error=str(exc),
                        error_type=type(exc).__name__,
                        retry_in_s=round(delay, 3),
                    )
                    self._set_status(last_error=f"refetch: {exc}")
                    await self._notify()  # the live view shows why it is not loaded yet
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                self._log.info(
                    "client.refetch_done",
                    scope=request.scope,
                    seq=snapshot.seq,
                    cells=len(snapshot.cells),
                )
                await self._inputs.put(_Fetched(request, snapshot))
                queued = self._rerun.pop(key, None)
                if queued is None:
                    return
                request = queued
                attempt = 0
        finally:
            self._in_flight.discard(key)
            self._set_status(
                refetching=len(self._in_flight), refetches_done=self.status.refetches_done + 1
            )
            await self._notify()

    async def _poll(self) -> None:
        while True:
            self._enqueue(_Reload("poll", force=False))
            await asyncio.sleep(self.config.poll_interval_s)

    # ------------------------------------------------------------------------------ connection

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            went_subscribed = await self._connect_once()
            if went_subscribed:
                attempt = 0
            delay = backoff_delay(
                attempt, self.config.rejoin_initial_backoff_s, self.config.rejoin_max_backoff_s
            )
            attempt += 1
            self._set_status(connection="reconnecting")
            await self._notify()
            self._log.info("client.rejoin_scheduled", in_s=round(delay, 3), attempt=attempt)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> bool:
        """One client lifetime: connect, join, serve until it fails. True if it was SUBSCRIBED."""
        cfg = self.config
        states: asyncio.Queue[tuple[RealtimeSubscribeStates, Exception | None]] = asyncio.Queue()
        client = AsyncRealtimeClient(
            f"{cfg.realtime_url.rstrip('/')}/realtime/v1",
            token=cfg.apikey or cfg.access_token,
            auto_reconnect=False,
            max_retries=1,
            timeout=cfg.join_timeout_s,
        )
        channel = None
        subscribed = False
        try:
            await client.connect()
            if cfg.apikey:
                await client.set_auth(cfg.access_token)
            channel = client.channel(
                self.matrix.channel,
                {
                    "config": {
                        "broadcast": {"ack": False, "self": False},
                        "presence": {"key": "", "enabled": False},
                        "private": True,
                    }
                },
            )

            def on_broadcast(message: Any) -> None:
                payload = message.get("payload")
                self._enqueue(
                    _Broadcast(
                        str(message.get("event")), payload if isinstance(payload, dict) else {}
                    )
                )

            channel.on_broadcast("*", on_broadcast)
            await channel.subscribe(lambda state, error: states.put_nowait((state, error)))
            while True:
                state, error = await states.get()
                if state == RealtimeSubscribeStates.SUBSCRIBED:
                    self._log.info("client.subscribed", rejoin=self.status.subscribed_count > 0)
                    reason = "rejoined" if self.status.subscribed_count else "initial"
                    subscribed = True
                    self._set_status(
                        connection="subscribed",
                        subscribed_count=self.status.subscribed_count + 1,
                        last_error=None,
                    )
                    self._enqueue(_Reload(reason, force=reason == "rejoined"))
                    continue
                event = {
                    RealtimeSubscribeStates.CHANNEL_ERROR: "client.channel_error",
                    RealtimeSubscribeStates.CLOSED: "client.closed",
                    RealtimeSubscribeStates.TIMED_OUT: "client.timed_out",
                }.get(state, "client.channel_error")
                refusal = refusal_reason(error)
                if (
                    state == RealtimeSubscribeStates.CHANNEL_ERROR
                    and not subscribed
                    and refusal is not None
                    and is_permanent_refusal(refusal)
                ):
                    self._log.error("client.join_denied", reason=refusal)
                    self._set_status(connection="denied", last_error=refusal)
                    await self._notify()
                    raise JoinDeniedError(self.matrix.channel, refusal)
                self._log.warning(event, error=refusal)
                self._set_status(last_error=f"{state.value}: {refusal}" if refusal else state.value)
                return subscribed
        except asyncio.CancelledError:
            await self._leave(client, channel)
            raise
        except RealtimeRefusedError:
            raise
        except Exception as exc:
            refused = upgrade_refusal(exc)
            if refused is not None:
                self._log.error("client.connect_denied", reason=refused, status=401)
                self._set_status(connection="denied", last_error=f"connect: {refused}")
                await self._notify()
                raise ConnectDeniedError(self.matrix.channel, refused) from None
            self._log.warning(
                "client.connect_failed", error=str(exc), error_type=type(exc).__name__
            )
            self._set_status(last_error=f"connect: {exc}")
            return subscribed
        finally:
            await self._discard(client, channel)

    async def _leave(self, client: AsyncRealtimeClient, channel: Any) -> None:
        """On stop: a polite phx_leave, bounded in time."""
        if channel is None or not client.is_connected:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await channel.unsubscribe()
        self._log.info("client.unsubscribed")

    @staticmethod
    async def _discard(client: AsyncRealtimeClient, channel: Any) -> None:
        """Stops everything the old client scheduled so it cannot act after we moved on."""
        if channel is not None:
            channel.rejoin_timer.reset()
            channel.join_push.destroy()
            for push in list(channel.messages_waiting_for_ack.values()):
                push.destroy()
        with contextlib.suppress(Exception):
            await client.close()

    # ------------------------------------------------------------------------------ observers

    def _set_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._on_change is not None:
            self._on_change(self.matrix, self.status)
