"""Who may join a results channel: Realtime's read check, run by the hub against the policy."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from daemon.hub.auth import AuthContext, Authorizer, Claims
from daemon.pipeline.store import Store
from tests.fixtures.pipeline import School


def _teacher(user: str) -> Claims:
    return Claims(token="", claims={"role": "authenticated", "sub": user, "exp": 4_102_444_800})


async def _may_join(pool: asyncpg.Pool, topic: str, user: str) -> bool:
    return await Authorizer(pool).can_read(AuthContext(topic, _teacher(user), {}))


async def test_a_teacher_joins_the_channels_of_the_group_and_no_other(
    school: School, pool: asyncpg.Pool
) -> None:
    assert await _may_join(pool, "assignment_results:G1:L1", school.t1)
    assert not await _may_join(pool, "assignment_results:G2:L1", school.t1)
    assert not await _may_join(pool, "assignment_results:G1:L1", school.p1)  # a pupil


@pytest.mark.parametrize(
    "topic",
    [
        "assignmentXresults:G1:L1",  # '_' was a LIKE wildcard
        "assignment_results_G1:L1",
        "assignment_results:G1:",
        "assignment_results:G1",
        "Assignment_results:G1:L1",
    ],
)
async def test_names_that_only_look_like_a_results_channel_are_refused(
    school: School, pool: asyncpg.Pool, topic: str
) -> None:
    assert not await _may_join(pool, topic, school.t1)


async def test_a_group_id_with_a_colon_has_no_channel_that_another_group_could_join(
    school: School, store: Store
) -> None:
    """'assignment_results:G1:X:L1' would read as group G1, lesson 'X:L1': G1's teacher could
    join it. So the cells of group 'G1:X' are published on no channel at all."""
    pupil = str(uuid.uuid4())
    await school.conn.execute(
        """
        insert into public.groups values ('G1:X', 'A group whose id holds a colon');
        insert into public.assignments values ('G1:X', 'L1');
        """
    )
    await school.conn.execute(
        "insert into public.group_members values ('G1:X', $1::uuid, 'pupil')", pupil
    )
    assert (
        await school.conn.fetchval("select results_realtime.channel_name_v1('G1:X', 'L1')") is None
    )
    assert (
        await school.conn.fetchval("select results_realtime.channel_name_v1('G1', 'X:L1')")
        == "assignment_results:G1:X:L1"  # a lesson id may hold one
    )
    await school.submit("A1", pupil, {"text": "mine alone"})
    result = await store.stage_batch(100)
    assert result.claimed == 1
    assert result.skipped == 1
    assert result.messages == ()


async def test_the_policy_shows_only_rows_of_the_channel_being_joined(
    school: School, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "insert into realtime.messages (topic, extension, payload, private)"
            " values ('another_topic', 'broadcast', '{}', true)"
        )
        await conn.fetchrow(
            "select set_config('role', 'authenticated', true),"
            " set_config('realtime.topic', 'assignment_results:G1:L1', true),"
            " set_config('request.jwt.claims', $1, true)",
            f'{{"role": "authenticated", "sub": "{school.t1}"}}',
        )
        visible = await conn.fetch("select topic from realtime.messages")
        assert [r["topic"] for r in visible] == []


async def test_anon_may_not_ask_who_teaches_a_group(school: School) -> None:
    async with school.conn.transaction():
        await school.conn.execute("set local role anon")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await school.conn.fetchval(
                "select results_realtime.is_group_teacher_v1('G1', $1::uuid)", school.t1
            )
