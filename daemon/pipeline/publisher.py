"""Publishes staged messages with Supabase Realtime's REST batch broadcast.

One pooled aiohttp session (keep-alive), at most `limiter.per_request` messages per POST, every
message counted against the daemon-wide rolling-window budget before each attempt. The request
timeout is an `asyncio.timeout` around the whole exchange, not aiohttp's own: aiohttp enters its
timer twice per request and so can turn a cancellation that lands together with the timeout into
a TimeoutError, which would make a publish that shutdown cancelled retry instead of stopping.
Outcomes:
- 2xx: accepted, the messages are acknowledged (deleted from the stage) at once;
- 429, 5xx, timeouts, transport errors: retried with exponential backoff and jitter, bounded in
  attempts and in time; when the bound is exhausted the messages stay staged (durable) and the
  cycle stops, so order per channel is kept and nothing is lost;
- 401/403/404/405: a problem of the credential or the URL, not of the messages; handled like an
  exhausted retry (never dead-letter a whole outbox because a key was rotated);
- any other 4xx: the message is malformed or too big. A batch is retried one message per request
  to find the culprit, which is dead-lettered (the acknowledger makes sure its clients refetch);
  the others go on.
Once the daemon is stopping, a request in flight is allowed to finish but no retry is waited for
or sent: the messages stay staged and go out after the restart, so a shutdown while Realtime is
down takes no longer than the request in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
)
from tenacity.stop import stop_base

from daemon.config import PublishSettings
from daemon.errors import PublishError, RejectedPublishError, RetryablePublishError, describe
from daemon.log import get_logger
from daemon.pipeline.credentials import ServiceRoleCredential
from daemon.pipeline.metrics import Metrics
from daemon.pipeline.ratelimit import Admission, RollingWindowLimiter

log = get_logger(__name__)

BROADCAST_PATH = "/realtime/v1/api/broadcast"
_BODY_LOG_LIMIT = 2000
# Statuses that say nothing about the messages themselves: keep them staged.
_NOT_THE_MESSAGES = frozenset({401, 403, 404, 405})
# A request body stays below this: common HTTP stacks refuse bigger bodies with a 413 (aiohttp's
# default is 1 MiB; Realtime's Plug parser 8 MB), which would cost one request per message.
MAX_BODY_BYTES = 1_000_000
_ENVELOPE_BYTES = 200  # a message's topic, event and keys around its payload, generously


class Publishable(Protocol):
    """What the publisher needs of a staged message (store.OutgoingMessage has it)."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def payload_json(self) -> bytes: ...
    @property
    def seq(self) -> int: ...
    @property
    def oldest_change_at(self) -> datetime: ...
    @property
    def cell_count(self) -> int: ...


class Acknowledger(Protocol):
    """Where outcomes go (the Store)."""

    async def ack(self, ids: Sequence[int]) -> None: ...

    async def dead_letter(
        self, messages: Sequence[Publishable], *, status: int | None, body: str
    ) -> None: ...

    async def mark_attempt(self, ids: Sequence[int]) -> None: ...


class _Throttled(RetryablePublishError):
    """A 429 (or 503) that may say how long to wait."""

    def __init__(self, message: str, *, status: int, body: str, retry_after: float | None):
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class _Stalled(PublishError):
    """Credential or URL refused: no point retrying now, and no message is at fault."""


class _NotStarted(Exception):
    """The daemon is stopping: the request was not sent (its messages stay staged)."""


@dataclass(slots=True)
class PublishReport:
    accepted: int = 0
    cells: int = 0
    dead_lettered: int = 0
    requests: int = 0
    stalled: bool = False
    stall_reason: str = ""
    channels: set[str] = field(default_factory=set)


class _StopWhenSet(stop_base):
    """tenacity's stop_when_event_set, for an asyncio.Event."""

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()


class Publisher:
    """Use as an async context manager (it owns the HTTP session) or call `close()`."""

    def __init__(
        self,
        settings: PublishSettings,
        *,
        realtime_url: str,
        credential: ServiceRoleCredential,
        metrics: Metrics,
        limiter: RollingWindowLimiter | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self._settings = settings
        self._stopping = stopping or asyncio.Event()  # set by the daemon's stop()
        self._url = realtime_url.rstrip("/") + BROADCAST_PATH
        self._credential = credential
        self._metrics = metrics
        self.limiter = limiter or RollingWindowLimiter(
            settings.max_messages_per_second, max_per_request=settings.max_messages_per_request
        )
        self.request_size = self.limiter.per_request
        self._random = random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return self._url

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=4, keepalive_timeout=30.0),
                timeout=aiohttp.ClientTimeout(),  # none of aiohttp's timers: see _post
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def has_budget(self) -> bool:
        return self.limiter.available() >= 1

    def budget_delay(self) -> float:
        return self.limiter.delay_for(1)

    async def publish(self, messages: Sequence[Publishable], sink: Acknowledger) -> PublishReport:
        """Send in order; stop at the first chunk that cannot be delivered now.

        Once the daemon is stopping no request starts (one in flight finishes, unretried): what
        is left stays staged for the next daemon, however much rate budget it would wait for.
        """
        report = PublishReport()
        chunks = self.chunks(messages)
        for sent, chunk in enumerate(chunks):
            try:
                await self._deliver(chunk, sink, report)
            except RejectedPublishError:
                if not await self._isolate(chunk, sink, report):
                    return report
            except (RetryablePublishError, _Stalled) as exc:
                await self._stall(report, exc, chunk, sink)
                return report
            except _NotStarted:
                self._hold(report, "stopping", sum(len(c) for c in chunks[sent:]))
                return report
        return report

    def chunks(self, messages: Sequence[Publishable]) -> list[Sequence[Publishable]]:
        """Requests in order: at most `request_size` messages and `MAX_BODY_BYTES` each.

        A message larger than the byte bound alone still goes, alone (its size is bounded by
        max_payload_bytes, which Realtime enforces per message).
        """
        out: list[Sequence[Publishable]] = []
        start, size = 0, 0
        for i, message in enumerate(messages):
            grown = size + len(message.payload_json) + _ENVELOPE_BYTES
            if i > start and (i - start == self.request_size or grown > MAX_BODY_BYTES):
                out.append(messages[start:i])
                start, grown = i, len(message.payload_json) + _ENVELOPE_BYTES
            size = grown
        if start < len(messages):
            out.append(messages[start:])
        return out

    async def _isolate(
        self, chunk: Sequence[Publishable], sink: Acknowledger, report: PublishReport
    ) -> bool:
        """One message per request, in order, to find the ones Realtime rejects."""
        for sent, message in enumerate(chunk):
            try:
                await self._deliver([message], sink, report)
            except RejectedPublishError as exc:
                await self._dead_letter(message, exc, sink, report)
            except (RetryablePublishError, _Stalled) as exc:
                await self._stall(report, exc, [message], sink)
                return False
            except _NotStarted:
                self._hold(report, "stopping", len(chunk) - sent)
                return False
        return True

    async def _deliver(
        self, chunk: Sequence[Publishable], sink: Acknowledger, report: PublishReport
    ) -> None:
        body = encode_batch(chunk)
        started = time.monotonic()
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryablePublishError),
            stop=stop_any(
                stop_after_attempt(self._settings.retry_max_attempts),
                stop_before_delay(self._settings.retry_max_seconds),
                _StopWhenSet(self._stopping),
            ),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        last_error: BaseException | None = None
        async for attempt in retrying:
            with attempt:
                if attempts and self._stopping.is_set():  # asked to stop during the backoff
                    raise RetryablePublishError(
                        f"not retried, stopping (last attempt: {last_error})"
                    ) from last_error
                attempts += 1
                admission = await self._admit(len(chunk))
                report.requests += 1
                try:
                    await self._post(body)
                except RetryablePublishError as exc:
                    last_error = exc
                    raise
                finally:
                    self.limiter.settle(admission)
        elapsed = time.monotonic() - started
        await sink.ack([m.id for m in chunk])
        self._record_accepted(chunk, elapsed, attempts, report)

    async def _admit(self, n: int) -> Admission:
        """Rate budget for a request of `n` messages, unless a stop comes first."""
        admission = await self.limiter.acquire(n, until=self._stopping)
        if admission is None:
            raise _NotStarted
        return admission

    async def _post(self, body: bytes) -> None:
        token = self._credential.token()
        headers = {
            "apikey": token,
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        }
        try:
            async with (
                asyncio.timeout(self._settings.request_timeout_s),
                self._http().post(self._url, data=body, headers=headers) as response,
            ):
                status = response.status
                text = (await response.text(errors="replace"))[:_BODY_LOG_LIMIT]
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            self._metrics.requests.labels(outcome="timeout").inc()
            timeout = self._settings.request_timeout_s
            raise RetryablePublishError(f"no answer within {timeout}s") from exc
        except aiohttp.ClientError as exc:
            self._metrics.requests.labels(outcome="transport_error").inc()
            raise RetryablePublishError(f"transport error: {describe(exc)}") from exc
        if 200 <= status < 300:
            self._metrics.requests.labels(outcome="accepted").inc()
            return
        self._metrics.requests.labels(outcome=str(status)).inc()
        if status == 429 or status == 503:
            raise _Throttled(
                f"Realtime answered {status}", status=status, body=text, retry_after=retry_after
            )
        if status >= 500 or status == 408:
            raise RetryablePublishError(f"Realtime answered {status}", status=status, body=text)
        if status in _NOT_THE_MESSAGES:
            raise _Stalled(
                f"Realtime answered {status} for {self._url}: check SUPABASE_URL and "
                "SUPABASE_SERVICE_ROLE_KEY",
                status=status,
                body=text,
            )
        raise RejectedPublishError(
            f"Realtime rejected the batch ({status})", status=status, body=text
        )

    def _wait(self, state: RetryCallState) -> float:
        """Equal jitter on a doubling base, capped; a server's Retry-After is honoured (capped)."""
        s = self._settings
        base = min(s.retry_max_wait_s, s.retry_initial_wait_s * 2 ** (state.attempt_number - 1))
        wait = self._random.uniform(base / 2, base) if base > 0 else 0.0
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Throttled) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, s.retry_max_wait_s))
        return wait

    async def _sleep(self, seconds: float) -> None:
        """A backoff that ends as soon as the daemon is asked to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        status = exc.status if isinstance(exc, RetryablePublishError) else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self._metrics.retries.inc()
        log.warning(
            "publish.retry_scheduled",
            status=status,
            attempt=state.attempt_number,
            wait_s=round(wait, 3),
            reason=str(exc),
        )

    async def _stall(
        self,
        report: PublishReport,
        exc: PublishError,
        chunk: Sequence[Publishable],
        sink: Acknowledger,
    ) -> None:
        self._hold(report, str(exc), len(chunk), status=exc.status, body=exc.body)
        try:
            await sink.mark_attempt([m.id for m in chunk])
        except Exception as mark_exc:  # bookkeeping only: never mask the stall itself
            log.warning("publish.mark_attempt_failed", error=repr(mark_exc))

    def _hold(
        self,
        report: PublishReport,
        reason: str,
        messages: int,
        *,
        status: int | None = None,
        body: str = "",
    ) -> None:
        """The rest of the batch stays staged: released for the next daemon, or stalled."""
        report.stalled = True
        report.stall_reason = reason
        if self._stopping.is_set():
            log.info(
                "publish.released",
                reason=reason,
                messages=messages,
                note="stopping: the messages stay staged and go out after the restart",
            )
        else:
            log.error(
                "publish.stalled",
                status=status,
                reason=reason,
                body=body,
                messages=messages,
                note="messages stay staged and are retried in the next cycle",
            )

    async def _dead_letter(
        self,
        message: Publishable,
        exc: RejectedPublishError,
        sink: Acknowledger,
        report: PublishReport,
    ) -> None:
        log.error(
            "publish.rejected",
            status=exc.status,
            body=exc.body,
            channel=message.channel,
            seq=message.seq,
            message_id=message.id,
        )
        await sink.dead_letter([message], status=exc.status, body=exc.body)
        self._metrics.dead_letters.inc()
        report.dead_lettered += 1
        log.warning(
            "publish.dead_lettered", channel=message.channel, seq=message.seq, status=exc.status
        )

    def _record_accepted(
        self, chunk: Sequence[Publishable], elapsed: float, attempts: int, report: PublishReport
    ) -> None:
        now = datetime.now(UTC)
        cells = sum(m.cell_count for m in chunk)
        lags = [max(0.0, (now - m.oldest_change_at).total_seconds()) for m in chunk]
        for lag in lags:
            self._metrics.lag.observe(lag)
        self._metrics.publish_latency.observe(elapsed)
        self._metrics.messages_sent.inc(len(chunk))
        self._metrics.cells_published.inc(cells)
        channels = {m.channel for m in chunk}
        report.accepted += len(chunk)
        report.cells += cells
        report.channels |= channels
        log.info(
            "batch.published",
            messages=len(chunk),
            cells=cells,
            channels=len(channels),
            attempts=attempts,
            latency_ms=round(elapsed * 1000, 2),
            lag_ms=round(max(lags) * 1000, 2),
        )


def encode_batch(messages: Sequence[Publishable]) -> bytes:
    """The REST batch body: bare topics, private channels, each payload's bytes as staged."""
    parts = [
        b'{"topic":%s,"event":%s,"payload":%s,"private":true}'
        % (_json_text(m.channel), _json_text(m.event), m.payload_json)
        for m in messages
    ]
    return b'{"messages":[' + b",".join(parts) + b"]}"


def _json_text(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
