"""The Python results subscription against the real hub (a subprocess) and the real daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from asyncpg.exceptions._base import PostgresMessageMeta

from daemon.client.matrix import Matrix, channel_name
from daemon.client.refetch import (
    PERMANENT_REFETCH_CODES,
    AssignmentNotFoundError,
    DatabaseRefetcher,
    PermanentRefetchError,
    RefetchDeniedError,
    claims_from_token,
    refetch_error,
)
from daemon.client.subscription import (
    ClientStatus,
    ConnectDeniedError,
    JoinDeniedError,
    ResultsSubscription,
    SubscriptionConfig,
    is_permanent_refusal,
    refusal_reason,
)
from daemon.demo.simulate import Action, perform
from daemon.tokens import mint_token
from tests.fixtures.client import LESSON, ResultsStack
from tests.support.waiting import eventually

G = "grp-7a"
WITHIN = 15.0
REFUSALS_FILE = Path(__file__).parent.parent / "clients/js/test/fixtures/join-refusals.json"
REFUSALS: list[dict[str, Any]] = json.loads(REFUSALS_FILE.read_text())["cases"]
REFETCH_ERRORS_FILE = REFUSALS_FILE.with_name("refetch-errors.json")
# PGRST* codes are PostgREST's own: the Python client calls the function over asyncpg.
REFETCH_ERRORS = [
    case
    for case in json.loads(REFETCH_ERRORS_FILE.read_text())["cases"]
    if not case["code"].startswith("PGRST")
]


async def loaded(sub: ResultsSubscription) -> Matrix:
    return await sub.wait_until(lambda m, s: m.loaded and s.connection == "subscribed", WITHIN)


def status_of(pupil: str, activity: str, want: str) -> Any:
    def check(m: Matrix, _: ClientStatus) -> bool:
        cell = m.cell(pupil, activity)
        return cell is not None and cell.status == want

    return check


async def broadcast(stack: ResultsStack, event: str, payload: dict[str, Any]) -> None:
    """What the daemon does: a REST batch broadcast with the service role."""
    token = mint_token(stack.jwt_secret, role="service_role")
    body = {
        "messages": [
            {"topic": channel_name(G, LESSON), "event": event, "payload": payload, "private": True}
        ]
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.hub_url}/realtime/v1/api/broadcast",
            json=body,
            headers={"Authorization": f"Bearer {token}", "apikey": token},
        ) as response,
    ):
        assert response.status == 202, await response.text()


async def silent_write(stack: ResultsStack, action: Action) -> None:
    """A change the triggers do not see (replica mode): only a refetch can reveal it."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute("set session_replication_role = replica")
        await perform(conn, action)
    finally:
        await conn.close()


async def reserve_seq(stack: ResultsStack) -> int:
    """Takes the channel's next seq away from the daemon (as if its message got lost)."""
    seq: int = await stack.pool.fetchval(
        "update results_realtime.channel_sequences set last_seq = last_seq + 1"
        " where channel = $1 returning last_seq",
        channel_name(G, LESSON),
    )
    assert seq is not None, "the channel has no seq yet; write something first"
    return seq


def answer(pupil: str, activity: str = "act-define", text: str = "light") -> Action:
    return Action(0, "answer", activity, pupil, body=json.dumps({"text": text}))


async def test_cells_are_patched_in_place_from_every_source(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    assert len(sub.matrix.pupil_ids) == 3
    assert len(sub.matrix.activities) == 6
    pupil = results_stack.pupil(G)
    name = f"{LESSON}/act-diagram/{pupil}/leaf.jpg"

    await results_stack.write(answer(pupil))
    m = await sub.wait_until(status_of(pupil, "act-define", "submitted"), WITHIN)
    assert m.cell(pupil, "act-define").needs_marking  # type: ignore[union-attr]

    await results_stack.write(Action(0, "upload", "act-diagram", pupil, object_name=name))
    m = await sub.wait_until(status_of(pupil, "act-diagram", "submitted"), WITHIN)
    cell = m.cell(pupil, "act-diagram")
    assert cell is not None
    assert cell.has_upload
    assert cell.upload_count == 1
    assert cell.needs_marking

    await results_stack.write(Action(0, "ai_mark", "act-define", pupil, score=6, feedback="ok"))
    m = await sub.wait_until(status_of(pupil, "act-define", "ai_marked"), WITHIN)
    assert m.cell(pupil, "act-define").score == 6  # type: ignore[union-attr]

    await results_stack.write(Action(0, "teacher_mark", "act-define", pupil, score=8, feedback="!"))
    m = await sub.wait_until(status_of(pupil, "act-define", "teacher_marked"), WITHIN)
    assert m.cell(pupil, "act-define").score == 8  # type: ignore[union-attr]

    await results_stack.write(Action(0, "delete_upload", "act-diagram", pupil, object_name=name))
    m = await sub.wait_until(status_of(pupil, "act-diagram", "not_submitted"), WITHIN)
    cell = m.cell(pupil, "act-diagram")
    assert cell is not None
    assert not cell.has_upload
    assert not cell.needs_marking

    # Every change arrived as a message and was applied in place: no refetch beyond the first.
    assert sub.status.refetches_done == 1
    assert m.counters.gaps == 0
    assert m.counters.duplicates == 0
    assert m.last_seq == 5
    assert sub.status.messages_received == 5


async def test_result_refresh_refetches_the_named_cell(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    pupil, other = results_stack.pupil(G, 0), results_stack.pupil(G, 1)
    await results_stack.write(answer(other))
    await sub.wait_until(status_of(other, "act-define", "submitted"), WITHIN)
    await silent_write(results_stack, answer(pupil, "act-explain"))
    await silent_write(results_stack, answer(other, "act-explain"))
    seq = await reserve_seq(results_stack)

    await broadcast(
        results_stack,
        "result_refresh",
        {
            "assignmentId": f"{G}__{LESSON}",
            "groupId": G,
            "lessonId": LESSON,
            "scope": "cell",
            "pupilId": pupil,
            "activityId": "act-explain",
            "reason": "too_large",
            "eventId": f"test:{seq}",
            "seq": seq,
            "prevSeq": seq - 1,
        },
    )
    m = await sub.wait_until(status_of(pupil, "act-explain", "submitted"), WITHIN)
    assert m.counters.refreshes == 1
    assert m.counters.gaps == 0
    assert m.last_seq == seq
    # Only the named cell was refetched: the other silent change is still unseen.
    assert m.cell(other, "act-explain").status == "not_submitted"  # type: ignore[union-attr]


async def test_duplicates_are_ignored_by_seq(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    pupil = results_stack.pupil(G)
    await results_stack.write(answer(pupil))
    m = await sub.wait_until(status_of(pupil, "act-define", "submitted"), WITHIN)
    delivered = m.cell(pupil, "act-define")
    assert delivered is not None
    assert m.last_seq == delivered.seq

    # A redelivery (same seq) whose content differs must not be applied.
    forged = {
        "assignmentId": f"{G}__{LESSON}", "groupId": G, "lessonId": LESSON,
        "activityId": "act-define", "pupilId": pupil, "submissionId": None, "op": "update",
        "source": "teacher", "status": "teacher_marked", "score": 1, "aiScore": None,
        "teacherScore": 1, "ai": None, "submittedAt": None, "uploadCount": 0,
        "hasUpload": False, "needsMarking": False, "changedAt": "2026-01-01T00:00:00Z",
        "eventId": f"dup:{delivered.seq}", "seq": delivered.seq, "prevSeq": delivered.seq - 1,
    }  # fmt: skip
    await broadcast(results_stack, "result_cell", forged)
    m = await sub.wait_until(lambda m, _: m.counters.duplicates == 1, WITHIN)
    assert m.cell(pupil, "act-define") == delivered
    assert sub.status.refetches_done == 1


async def test_a_gap_refetches_the_assignment_once(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    pupil, other = results_stack.pupil(G, 0), results_stack.pupil(G, 2)
    await results_stack.write(answer(pupil))
    await sub.wait_until(status_of(pupil, "act-define", "submitted"), WITHIN)

    # A message is lost: its seq is taken and its change is invisible to the client.
    await silent_write(results_stack, answer(other, "act-explain"))
    lost = await reserve_seq(results_stack)
    await results_stack.write(Action(0, "ai_mark", "act-define", pupil, score=4, feedback="x"))

    m = await sub.wait_until(
        lambda m, s: (
            m.counters.gaps == 1
            and not m.assignment_refetch_pending
            and s.refetching == 0
            and status_of(other, "act-explain", "submitted")(m, s)
        ),
        WITHIN,
    )
    assert m.last_seq == lost + 1
    assert m.cell(pupil, "act-define").status == "ai_marked"  # type: ignore[union-attr]
    assert sub.status.refetches_done == 2  # the initial load and exactly one gap refetch


async def test_reconnects_after_the_hub_is_killed_and_refetches(
    results_stack: ResultsStack,
) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    pupil, other = results_stack.pupil(G, 0), results_stack.pupil(G, 1)

    async def while_down() -> None:
        await sub.wait_until(lambda _, s: s.connection == "reconnecting", WITHIN)
        await silent_write(results_stack, answer(pupil, "act-quiz-1"))

    await results_stack.restart_hub(while_down)
    m = await sub.wait_until(
        lambda m, s: (
            s.subscribed_count == 2
            and s.connection == "subscribed"
            and status_of(pupil, "act-quiz-1", "submitted")(m, s)
        ),
        WITHIN,
    )
    assert m.cell(pupil, "act-quiz-1") is not None
    # The new connection carries live messages again.
    await results_stack.write(answer(other))
    await sub.wait_until(status_of(other, "act-define", "submitted"), WITHIN)


async def denied_joins(stack: ResultsStack, code: str) -> float:
    """The hub's count of joins it refused with this code (its /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(f"{stack.hub_url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f'hub_denied_joins_total{{code="{code}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("case", REFUSALS, ids=[c["reason"][:40] for c in REFUSALS])
def test_which_join_refusals_are_permanent(case: dict[str, Any]) -> None:
    """The case table the TypeScript client shares; the reason arrives as the reply's JSON."""
    reason = refusal_reason(Exception(json.dumps({"reason": case["reason"]})))
    assert reason == case["reason"]
    assert is_permanent_refusal(reason) is case["permanent"]


async def test_a_join_the_policy_refuses_stops_with_denied(results_stack: ResultsStack) -> None:
    pupil = results_stack.pupil(G)
    pupil_token = mint_token(results_stack.jwt_secret, role="authenticated", sub=pupil)
    config = SubscriptionConfig(
        realtime_url=results_stack.hub_url,
        access_token=pupil_token,
        group_id=G,
        lesson_id=LESSON,
        rejoin_initial_backoff_s=0.01,
        rejoin_max_backoff_s=0.05,
    )
    refetcher = DatabaseRefetcher(
        results_stack.pool, claims_from_token(pupil_token, secret=results_stack.jwt_secret)
    )
    sub = ResultsSubscription(config, refetcher)
    with pytest.raises(JoinDeniedError) as denied:
        await asyncio.wait_for(sub.run(), WITHIN)  # returns: no rejoin after the refusal
    assert denied.value.reason.startswith(
        "Unauthorized: You do not have permissions to read from this Channel topic"
    )
    assert denied.value.exit_code == 4
    assert sub.status.connection == "denied"
    assert sub.status.last_error == denied.value.reason
    assert sub.status.subscribed_count == 0
    assert await denied_joins(results_stack, "Unauthorized") == 1


async def test_a_socket_refused_with_401_stops_with_denied(results_stack: ResultsStack) -> None:
    """The key in the URL is the same on every attempt: a retry could only be refused again."""
    teacher = results_stack.school.teacher_of(G).id
    forged = mint_token("another-secret-of-at-least-32-characters!", role="authenticated",
                        sub=teacher)  # fmt: skip
    config = SubscriptionConfig(
        realtime_url=results_stack.hub_url,
        access_token=forged,
        group_id=G,
        lesson_id=LESSON,
        rejoin_initial_backoff_s=0.01,
        rejoin_max_backoff_s=0.05,
    )
    refetcher = DatabaseRefetcher(results_stack.pool, claims_from_token(forged, secret=None))
    sub = ResultsSubscription(config, refetcher)
    with pytest.raises(ConnectDeniedError) as denied:
        await asyncio.wait_for(sub.run(), WITHIN)  # returns: no reconnect after the refusal
    assert denied.value.reason == "Failed to validate JWT signature"
    assert denied.value.exit_code == 4
    assert sub.status.connection == "denied"
    assert sub.status.last_error == "connect: Failed to validate JWT signature"
    assert sub.status.subscribed_count == 0


async def test_a_transient_join_refusal_is_retried(results_stack: ResultsStack) -> None:
    """An expired user token (which a refresh would replace) is refused, and tried again."""
    teacher = results_stack.school.teacher_of(G).id
    expired = mint_token(results_stack.jwt_secret, role="authenticated", sub=teacher, ttl_s=-60)
    anon = mint_token(results_stack.jwt_secret, role="anon")
    sub = results_stack.subscribe(G, access_token=expired, apikey=anon)

    async def refused_twice() -> bool:
        return await denied_joins(results_stack, "InvalidJWTToken") >= 2

    await eventually(refused_twice, deadline_s=WITHIN, what="a second join attempt")
    assert sub.status.connection in ("connecting", "reconnecting")
    assert sub.status.last_error is not None
    assert "InvalidJWTToken: Token has expired" in sub.status.last_error


async def test_flag_off_polls_without_subscribing(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G, enabled=False, poll_interval_s=0.1)
    await sub.wait_until(lambda m, _: m.loaded, WITHIN)
    pupil = results_stack.pupil(G)
    await silent_write(results_stack, answer(pupil, "act-quiz-2"))
    m = await sub.wait_until(status_of(pupil, "act-quiz-2", "submitted"), WITHIN)
    assert sub.status.connection == "polling"
    assert sub.status.messages_received == 0
    assert m.counters.received == 0
    assert await results_stack.hub.sockets() == 0


async def test_a_group_id_with_a_colon_is_polled_it_has_no_channel(
    results_stack: ResultsStack,
) -> None:
    """sql/migrations/0012: the daemon publishes no channel for it, and the one the client would
    name reads as another group's."""
    sub = _teacher_subscription(results_stack, "grp-7a:x")
    assert sub.status.connection == "polling"
    with pytest.raises(RefetchDeniedError):  # nobody teaches that group: its first read ends it
        await asyncio.wait_for(sub.run(), WITHIN)
    assert sub.status.refetches_done == 1
    assert sub.status.subscribed_count == 0
    assert await results_stack.hub.sockets() == 0


async def test_closing_unsubscribes(results_stack: ResultsStack) -> None:
    sub = results_stack.subscribe(G)
    await loaded(sub)
    assert await results_stack.hub.sockets() == 1
    await results_stack.close()
    assert sub.status.connection == "closed"
    await _hub_sees_no_socket(results_stack)


async def _hub_sees_no_socket(stack: ResultsStack) -> None:
    async def no_sockets() -> bool:
        return await stack.hub.sockets() == 0

    await eventually(no_sockets, deadline_s=WITHIN, what="the hub to see the socket go")


@pytest.mark.parametrize("case", REFETCH_ERRORS, ids=lambda case: case["code"])
def test_which_refetch_errors_are_permanent(case: dict[str, Any]) -> None:
    kind = PostgresMessageMeta.get_message_class_for_sqlstate(case["code"])
    error = refetch_error(kind("from the server"), "g", "l")
    assert isinstance(error, PermanentRefetchError) is case["permanent"]
    assert (case["code"] in PERMANENT_REFETCH_CODES) is case["permanent"]
    if case["permanent"]:
        assert isinstance(error, PermanentRefetchError)
        assert error.code == case["code"]


def _teacher_subscription(
    stack: ResultsStack,
    group_id: str,
    *,
    lesson_id: str = LESSON,
    pool: asyncpg.Pool | None = None,
    **options: Any,
) -> ResultsSubscription:
    """Reads as the teacher of G (through `pool`, else the stack's); not started (the test
    awaits or runs it)."""
    token = stack.teacher_token(G)
    config = SubscriptionConfig(
        realtime_url=stack.hub_url,
        access_token=token,
        group_id=group_id,
        lesson_id=lesson_id,
        **{"poll_interval_s": 0.05, "refetch_max_backoff_s": 0.05, **options},
    )
    claims = claims_from_token(token, secret=stack.jwt_secret)
    return ResultsSubscription(config, DatabaseRefetcher(pool or stack.pool, claims))


@pytest.mark.parametrize("enabled", [True, False], ids=["live", "polling"])
async def test_a_refetch_refused_for_good_stops_with_denied(
    results_stack: ResultsStack, enabled: bool
) -> None:
    """No retry can assign the lesson: the first refusal ends run(), the join (allowed: a
    teacher of the group) is left."""
    sub = _teacher_subscription(results_stack, G, lesson_id="nope", enabled=enabled)
    with pytest.raises(AssignmentNotFoundError):
        await asyncio.wait_for(sub.run(), WITHIN)
    assert sub.status.connection == "denied"
    assert sub.status.last_error is not None
    assert sub.status.last_error.startswith("refetch: lesson nope is not assigned to group")
    assert sub.status.refetches_done == 1
    assert sub.status.subscribed_count == (1 if enabled else 0)
    await _hub_sees_no_socket(results_stack)


async def test_a_refetch_that_fails_in_passing_is_retried(results_stack: ResultsStack) -> None:
    """A lock timeout is no refusal: the refetch is tried again until the lock is gone."""
    pool = await asyncpg.create_pool(
        results_stack.database_url, min_size=1, max_size=1, server_settings={"lock_timeout": "1"}
    )
    holder = await asyncpg.connect(results_stack.database_url)
    try:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("lock table public.assignments in access exclusive mode")
        sub = _teacher_subscription(results_stack, G, pool=pool, enabled=False, poll_interval_s=60)
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(sub.run())
            await sub.wait_until(lambda _, s: s.last_error is not None, WITHIN)
            assert sub.status.connection == "polling"
            await locked.rollback()
            await sub.wait_until(lambda m, _: m.loaded, WITHIN)
            running.cancel()
    finally:
        await holder.close()
        await pool.close()
    assert sub.status.refetches_done == 1  # one request, served by a later attempt
    assert sub.status.last_error is not None
    assert "lock timeout" in sub.status.last_error
    assert sub.status.connection == "closed"
