"""The publisher against a real HTTP server on a real socket: shape, retries, rejections, budget."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.config import PublishSettings, RealtimeSettings
from daemon.errors import ConfigError
from daemon.pipeline.credentials import ServiceRoleCredential
from daemon.pipeline.metrics import Metrics
from daemon.pipeline.publisher import Publishable, Publisher
from tests.support.capture_server import CaptureServer
from tests.support.waiting import eventually

KEY = "service-role-key-for-tests"


@dataclass(frozen=True)
class Message:
    """A staged message as the store hands it over (only the fields the publisher reads)."""

    id: int
    channel: str
    seq: int
    event: str = "result_cell"
    cell_count: int = 1
    oldest_change_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def payload(self) -> dict[str, Any]:
        event_id = f"{self.channel}:{self.seq}"
        return {"seq": self.seq, "prevSeq": self.seq - 1 or None, "eventId": event_id}

    @property
    def payload_json(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


@dataclass
class Outcomes:
    """Records what the publisher acknowledged and dead-lettered, in order."""

    acked: list[int] = field(default_factory=list)
    dead: list[tuple[int, int | None, str]] = field(default_factory=list)
    failed_attempts: list[int] = field(default_factory=list)

    async def ack(self, ids: Sequence[int]) -> None:
        self.acked.extend(ids)

    async def dead_letter(
        self, messages: Sequence[Publishable], *, status: int | None, body: str
    ) -> None:
        self.dead.extend((m.id, status, body) for m in messages)

    async def mark_attempt(self, ids: Sequence[int]) -> None:
        self.failed_attempts.extend(ids)


def settings(**overrides: Any) -> PublishSettings:
    base: dict[str, Any] = {
        "max_messages_per_second": 10_000,
        "max_messages_per_request": 50,
        "request_timeout_s": 0.3,
        "retry_initial_wait_s": 0,
        "retry_max_wait_s": 0,
        "retry_max_attempts": 5,
        "retry_max_seconds": 30,
    }
    return PublishSettings(**{**base, **overrides})


def make_publisher(
    url: str,
    metrics: Metrics | None = None,
    stopping: asyncio.Event | None = None,
    **overrides: Any,
) -> Publisher:
    credential = ServiceRoleCredential(RealtimeSettings(url=url, service_role_key=KEY))
    return Publisher(
        settings(**overrides),
        realtime_url=url,
        credential=credential,
        metrics=metrics or Metrics(),
        stopping=stopping,
    )


def messages(n: int, channel: str = "assignment_results:g1:l1", first_id: int = 1) -> list[Message]:
    return [Message(id=first_id + i, channel=channel, seq=i + 1) for i in range(n)]


async def test_batch_body_and_headers_match_supabase(capture_server: CaptureServer) -> None:
    outcomes = Outcomes()
    async with make_publisher(capture_server.url) as publisher:
        report = await publisher.publish(messages(2), outcomes)
    assert report.accepted == 2
    assert not report.stalled
    assert outcomes.acked == [1, 2]
    request = capture_server.requests[0]
    assert request.headers["apikey"] == KEY
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.body == {
        "messages": [
            {
                "topic": "assignment_results:g1:l1",
                "event": "result_cell",
                "payload": {"seq": 1, "prevSeq": None, "eventId": "assignment_results:g1:l1:1"},
                "private": True,
            },
            {
                "topic": "assignment_results:g1:l1",
                "event": "result_cell",
                "payload": {"seq": 2, "prevSeq": 1, "eventId": "assignment_results:g1:l1:2"},
                "private": True,
            },
        ]
    }


async def test_at_most_max_messages_per_request_in_order(capture_server: CaptureServer) -> None:
    outcomes = Outcomes()
    async with make_publisher(capture_server.url, max_messages_per_request=3) as publisher:
        report = await publisher.publish(messages(7), outcomes)
    assert [len(r.body["messages"]) for r in capture_server.requests] == [3, 3, 1]
    assert [seq for _, seq in capture_server.received()] == [1, 2, 3, 4, 5, 6, 7]
    assert outcomes.acked == [1, 2, 3, 4, 5, 6, 7]
    assert report.requests == 3


@pytest.mark.parametrize("fault", [500, 502, 503, 429, "timeout"])
async def test_transient_failures_are_retried_nothing_lost(
    capture_server: CaptureServer, fault: int | str
) -> None:
    capture_server.fail_next(2, fault)  # type: ignore[arg-type]
    metrics = Metrics()
    outcomes = Outcomes()
    with capture_logs() as logs:
        async with make_publisher(capture_server.url, metrics) as publisher:
            report = await publisher.publish(messages(4), outcomes)
    assert not report.stalled
    assert capture_server.received() == [("assignment_results:g1:l1", s) for s in (1, 2, 3, 4)]
    assert outcomes.acked == [1, 2, 3, 4]
    retries = [e for e in logs if e["event"] == "publish.retry_scheduled"]
    assert [e["attempt"] for e in retries] == [1, 2]
    expected_status = None if fault == "timeout" else fault
    assert all(e["status"] == expected_status for e in retries)
    assert metrics.registry.get_sample_value("results_realtime_publish_retries_total") == 2


async def test_exhausted_retries_leave_messages_staged(capture_server: CaptureServer) -> None:
    capture_server.fail_next(3, 500)
    outcomes = Outcomes()
    batch = messages(4)
    with capture_logs() as logs:
        async with make_publisher(
            capture_server.url, retry_max_attempts=3, max_messages_per_request=2
        ) as publisher:
            first = await publisher.publish(batch, outcomes)
            assert first.stalled
            assert first.accepted == 0
            assert outcomes.failed_attempts == [1, 2]  # the chunk that could not go out
            assert outcomes.acked == []
            assert outcomes.dead == []
            second = await publisher.publish(batch, outcomes)
    assert second.accepted == 4
    assert not second.stalled
    assert outcomes.acked == [1, 2, 3, 4]
    assert capture_server.received() == [("assignment_results:g1:l1", s) for s in (1, 2, 3, 4)]
    assert any(e["event"] == "publish.stalled" for e in logs)


async def test_retry_bound_in_time(capture_server: CaptureServer) -> None:
    """The total-time bound ends the retries even when attempts remain."""
    capture_server.fail_next(100, 500)
    outcomes = Outcomes()
    async with make_publisher(
        capture_server.url,
        retry_max_attempts=1000,
        retry_max_seconds=0.5,
        retry_initial_wait_s=0.05,
        retry_max_wait_s=0.05,
    ) as publisher:
        report = await publisher.publish(messages(1), outcomes)
    assert report.stalled
    assert 1 < len(capture_server.requests) < 100
    assert outcomes.acked == []


async def test_cancellation_wins_over_a_request_timeout_expiring_with_it(
    capture_server: CaptureServer,
) -> None:
    """A shutdown that cancels a publish must stop it, even when the request times out as well.

    On a loaded machine the owner's cancel and the request's own timeout can land in the same
    event-loop iteration; the timeout must not absorb the cancellation (the publish would then
    retry and the daemon would never stop). Stalling the loop past both makes them coincide.
    """
    capture_server.fail_next(1, "timeout")  # Realtime never answers: the request is in flight
    loop = asyncio.get_running_loop()
    timeout_s = 0.3
    async with make_publisher(
        capture_server.url, request_timeout_s=timeout_s, retry_max_attempts=5
    ) as publisher:
        publishing = asyncio.create_task(publisher.publish(messages(1), Outcomes()))
        await capture_server.wait_for_requests(1)  # sent: its timeout is armed
        loop.call_later(timeout_s, publishing.cancel)  # due after the request's timeout
        loop.call_soon(time.sleep, 2 * timeout_s)  # a busy machine: both become due together
        done, _ = await asyncio.wait({publishing}, timeout=10)
        publishing.cancel()
    assert publishing in done
    assert publishing.cancelled()
    assert len(capture_server.requests) == 1  # not retried after the cancellation


async def test_rejected_message_is_isolated_and_dead_lettered(
    capture_server: CaptureServer,
) -> None:
    capture_server.reject_when = lambda m: m["payload"]["seq"] == 3
    metrics = Metrics()
    outcomes = Outcomes()
    with capture_logs() as logs:
        async with make_publisher(capture_server.url, metrics) as publisher:
            report = await publisher.publish(messages(5), outcomes)
    assert not report.stalled
    assert [seq for _, seq in capture_server.received()] == [1, 2, 4, 5]
    assert outcomes.acked == [1, 2, 4, 5]
    assert [(i, status) for i, status, _ in outcomes.dead] == [(3, 422)]
    assert "rejected" in outcomes.dead[0][2]
    rejected = [e for e in logs if e["event"] == "publish.rejected"]
    assert rejected
    assert "rejected" in rejected[0]["body"]
    assert any(e["event"] == "publish.dead_lettered" for e in logs)
    assert metrics.registry.get_sample_value("results_realtime_dead_letters_total") == 1


async def test_bad_key_stalls_without_dead_lettering(capture_server: CaptureServer) -> None:
    capture_server.token = "the-real-key"
    outcomes = Outcomes()
    async with make_publisher(capture_server.url) as publisher:
        report = await publisher.publish(messages(3), outcomes)
    assert report.stalled
    assert "SUPABASE_SERVICE_ROLE_KEY" in report.stall_reason
    assert outcomes.acked == []
    assert outcomes.dead == []
    assert len(capture_server.requests) == 1  # not retried: the key will not fix itself


async def test_unreachable_realtime_stalls() -> None:
    from daemon.localpg import free_port

    outcomes = Outcomes()
    url = f"http://127.0.0.1:{free_port()}"
    async with make_publisher(url, retry_max_attempts=2) as publisher:
        report = await publisher.publish(messages(1), outcomes)
    assert report.stalled
    assert "transport error: ClientConnectorError: Cannot connect to host" in report.stall_reason
    assert outcomes.acked == []


async def test_a_stop_during_the_backoff_releases_the_batch_without_retrying(
    capture_server: CaptureServer,
) -> None:
    capture_server.fail_next(100, 503)
    metrics, stopping, outcomes = Metrics(), asyncio.Event(), Outcomes()
    retries = "results_realtime_publish_retries_total"
    long_backoff = {"retry_initial_wait_s": 30, "retry_max_wait_s": 30, "retry_max_attempts": 10}
    async with make_publisher(capture_server.url, metrics, stopping, **long_backoff) as publisher:
        publish = asyncio.create_task(publisher.publish(messages(3), outcomes))
        await eventually(
            lambda: bool(metrics.registry.get_sample_value(retries)),
            what="a retry scheduled (the 15-30 s backoff begun)",
        )
        with capture_logs() as logs:
            stopping.set()
            async with asyncio.timeout(5):  # far below the 15-30 s backoff it was in
                report = await publish
    assert report.stalled
    assert "not retried, stopping" in report.stall_reason
    assert "503" in report.stall_reason  # the last real failure is kept
    assert len(capture_server.requests) == 1  # no second attempt after the stop
    assert outcomes.acked == []
    assert outcomes.dead == []
    assert outcomes.failed_attempts == [1, 2, 3]  # they stay staged, their attempt counted
    events = [e["event"] for e in logs]
    assert "publish.released" in events
    assert "publish.stalled" not in events


async def test_a_request_in_flight_when_the_stop_comes_is_not_retried(
    capture_server: CaptureServer,
) -> None:
    capture_server.fail_next(100, "timeout")  # no answer: the request times out after the stop
    stopping = asyncio.Event()
    outcomes = Outcomes()
    async with make_publisher(capture_server.url, stopping=stopping) as publisher:
        publish = asyncio.create_task(publisher.publish(messages(2), outcomes))
        await capture_server.wait_for_requests(1)
        stopping.set()
        report = await publish
    assert report.stalled
    assert len(capture_server.requests) == 1
    assert outcomes.acked == []


async def test_a_stop_starts_no_further_request_of_the_batch(
    capture_server: CaptureServer,
) -> None:
    """At 1 message a second the rest of a 4-message batch would take 3 more seconds."""
    stopping = asyncio.Event()
    outcomes = Outcomes()
    budget = {"max_messages_per_second": 1, "max_messages_per_request": 1}
    async with make_publisher(capture_server.url, stopping=stopping, **budget) as publisher:
        publish = asyncio.create_task(publisher.publish(messages(4), outcomes))
        await capture_server.wait_for_requests(1)
        with capture_logs() as logs:
            stopping.set()
            async with asyncio.timeout(0.5):  # not the seconds the budget would wait
                report = await publish
    assert report.stalled
    assert len(capture_server.requests) == 1
    assert outcomes.acked == [1]
    assert outcomes.failed_attempts == []  # never attempted: no attempt counted
    released = [e for e in logs if e["event"] == "publish.released"]
    assert [e["messages"] for e in released] == [3]


async def test_a_stopped_publisher_sends_nothing(capture_server: CaptureServer) -> None:
    stopping = asyncio.Event()
    stopping.set()
    outcomes = Outcomes()
    async with make_publisher(capture_server.url, stopping=stopping) as publisher:
        report = await publisher.publish(messages(2), outcomes)
    assert report.stalled
    assert capture_server.requests == []
    assert outcomes.acked == []


async def test_metrics_count_messages_cells_and_latency(capture_server: CaptureServer) -> None:
    metrics = Metrics()
    outcomes = Outcomes()
    batch = [Message(id=1, channel="c:a:b", seq=1, cell_count=3), Message(2, "c:a:c", 1)]
    async with make_publisher(capture_server.url, metrics) as publisher:
        await publisher.publish(batch, outcomes)
    sample = metrics.registry.get_sample_value
    assert sample("results_realtime_messages_sent_total") == 2
    assert sample("results_realtime_cells_published_total") == 4
    assert sample("results_realtime_publish_latency_seconds_count") == 1
    assert sample("results_realtime_commit_to_publish_lag_seconds_count") == 2


async def test_minted_token_when_only_the_jwt_secret_is_set(
    capture_server: CaptureServer, jwt_secret: str
) -> None:
    import jwt

    with capture_logs() as logs:
        credential = ServiceRoleCredential(
            RealtimeSettings(url=capture_server.url, jwt_secret=jwt_secret)
        )
    assert any(e["event"] == "publish.token_minted" for e in logs)
    async with Publisher(
        settings(), realtime_url=capture_server.url, credential=credential, metrics=Metrics()
    ) as publisher:
        await publisher.publish(messages(1), Outcomes())
    token = capture_server.requests[0].headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, jwt_secret, algorithms=["HS256"])
    assert claims["role"] == "service_role"
    assert claims["exp"] > claims["iat"]


def test_missing_credentials_name_both_variables() -> None:
    with pytest.raises(ConfigError, match=r"SUPABASE_SERVICE_ROLE_KEY.*SUPABASE_JWT_SECRET"):
        ServiceRoleCredential(RealtimeSettings())


@dataclass(frozen=True)
class BigMessage(Message):
    size: int = 300_000

    @property
    def payload_json(self) -> bytes:
        return b'{"blob":"' + b"x" * self.size + b'"}'


async def test_requests_stay_below_the_body_bound_and_keep_the_order(
    capture_server: CaptureServer,
) -> None:
    big = [BigMessage(id=i, channel="assignment_results:g1:l1", seq=i) for i in range(1, 8)]
    huge = BigMessage(id=8, channel="assignment_results:g1:l1", seq=8, size=900_000)
    async with make_publisher(capture_server.url) as publisher:
        chunks = publisher.chunks([*big, huge])
        assert [[m.id for m in c] for c in chunks] == [[1, 2, 3], [4, 5, 6], [7], [8]]
        outcomes = Outcomes()
        report = await publisher.publish([*big, huge], outcomes)
    assert (report.accepted, report.requests, report.dead_lettered) == (8, 4, 0)
    assert outcomes.acked == list(range(1, 9))
