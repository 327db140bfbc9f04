"""The whole path: SQL write -> trigger -> daemon -> local hub -> unchanged realtime-py."""

from __future__ import annotations

import asyncpg
from realtime import RealtimeSubscribeStates

from tests.fixtures.hub import RunningHub
from tests.fixtures.hub_clients import subscribed
from tests.support.daemon import fast_settings, running
from tests.support.school import seed_school, submit_text


async def test_teacher_receives_the_cell_through_the_hub(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    school = await seed_school(db)
    settings = fast_settings(
        hub.url, realtime={"service_role_key": None, "jwt_secret": hub.jwt_secret}
    )
    teacher = hub.token(sub=str(school.teacher))
    async with (
        running(hub.database_url, settings),
        subscribed(hub, school.channel(), teacher) as sub,
    ):
        assert (await sub.state())[0] == RealtimeSubscribeStates.SUBSCRIBED
        await submit_text(db, "a-text", school.pupils[0], "live")
        first = await sub.message()
        await db.execute(
            "update submissions set teacher_score = 4, teacher_marked_at = now()"
            " where activity_id = 'a-text' and user_id = $1",
            school.pupils[0],
        )
        second = await sub.message()
    assert first["event"] == "result_cell"
    assert first["payload"]["status"] == "submitted"
    assert first["payload"]["pupilId"] == str(school.pupils[0])
    assert second["payload"]["status"] == "teacher_marked"
    assert second["payload"]["score"] == 4
    assert (first["payload"]["seq"], second["payload"]["prevSeq"]) == (1, 1)


async def test_a_truncate_reaches_the_teacher_as_the_emptied_cell(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    school = await seed_school(db)
    settings = fast_settings(
        hub.url, realtime={"service_role_key": None, "jwt_secret": hub.jwt_secret}
    )
    teacher = hub.token(sub=str(school.teacher))
    async with (
        running(hub.database_url, settings),
        subscribed(hub, school.channel(), teacher) as sub,
    ):
        assert (await sub.state())[0] == RealtimeSubscribeStates.SUBSCRIBED
        await submit_text(db, "a-text", school.pupils[0], "soon gone")
        first = await sub.message()
        await db.execute("truncate submissions")
        second = await sub.message()
    assert first["payload"]["status"] == "submitted"
    assert second["event"] == "result_cell"
    cell = second["payload"]
    assert (cell["activityId"], cell["pupilId"]) == ("a-text", str(school.pupils[0]))
    assert (cell["op"], cell["source"], cell["status"]) == ("delete", "system", "not_submitted")
    assert (cell["submissionId"], cell["needsMarking"], cell["prevSeq"]) == (None, False, 1)
