"""public.read_assignment_results: the refetch clients use, its scopes and who may call it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from daemon.pipeline.store import Store
from tests.fixtures.pipeline import School
from tests.test_sql_cells import CELL_KEYS

READ = "select public.read_assignment_results($1, $2, $3, $4)::text"


async def read(
    conn: asyncpg.Connection,
    group: str = "G1",
    lesson: str = "L1",
    pupil: str | None = None,
    activity: str | None = None,
) -> dict[str, Any]:
    result = await conn.fetchval(READ, group, lesson, pupil, activity)
    decoded: dict[str, Any] = json.loads(result)
    return decoded


async def read_as(
    conn: asyncpg.Connection, claims: dict[str, Any], role: str = "authenticated"
) -> dict[str, Any]:
    """As PostgREST does it: a role and the JWT claims, for one transaction."""
    async with conn.transaction():
        await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(claims))
        await conn.execute(f"set local role {role}")
        return await read(conn)


async def test_the_whole_matrix(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await school.ai_mark("A1", school.p2, 7)
    await school.upload(school.path("A2", school.p1))
    result = await read(school.conn)
    assert set(result) == {
        "assignmentId",
        "groupId",
        "lessonId",
        "seq",
        "activities",
        "pupilIds",
        "cells",
    }
    assert (result["assignmentId"], result["groupId"], result["lessonId"]) == (
        "G1__L1",
        "G1",
        "L1",
    )
    assert result["seq"] is None  # nothing staged on the channel yet
    assert result["activities"] == [
        {"activityId": "A1", "title": "Explain", "kind": "text", "position": 1},
        {"activityId": "A2", "title": "Diagram", "kind": "upload", "position": 2},
        {"activityId": "A3", "title": "Quiz", "kind": "choice", "position": 3},
    ]
    pupils = sorted([school.p1, school.p2])
    assert result["pupilIds"] == pupils
    cells = result["cells"]
    assert [(c["pupilId"], c["activityId"]) for c in cells] == [
        (p, a) for p in pupils for a in ("A1", "A2", "A3")
    ]
    by_key = {(c["pupilId"], c["activityId"]): c for c in cells}
    assert by_key[(school.p2, "A1")]["status"] == "ai_marked"
    assert by_key[(school.p2, "A1")]["score"] == 7
    assert by_key[(school.p1, "A2")]["hasUpload"] is True
    assert by_key[(school.p1, "A2")]["needsMarking"] is True
    assert by_key[(school.p1, "A3")]["status"] == "not_submitted"
    for cell in cells:
        assert set(cell) == set(CELL_KEYS)
        assert (cell["op"], cell["source"], cell["groupId"]) == ("update", "system", "G1")
        assert cell["eventId"] == "read:assignment_results:G1:L1:0"
        assert (cell["seq"], cell["prevSeq"]) == (None, None)


async def test_cells_read_equal_cells_published(school: School, store: Store) -> None:
    """One adapter for both paths: the state parts of a message and of a read are identical."""
    await school.submit("A1", school.p2, {"text": "a"})
    await school.upload(school.path("A1", school.p2))
    await store.stage_batch(500)
    [message] = await store.pending(10)
    [cell] = (await read(school.conn, pupil=school.p2, activity="A1"))["cells"]
    envelope = {"op", "source", "changedAt", "eventId", "seq", "prevSeq"}
    assert {k: v for k, v in cell.items() if k not in envelope} == {
        k: v for k, v in message.payload.items() if k not in envelope
    }


async def test_row_column_and_cell_scopes_and_the_reported_seq(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p2, {"text": "a"})
    await store.stage_batch(500)
    await school.submit("A2", school.p2, {"text": "b"})
    await store.stage_batch(500)
    row = await read(school.conn, pupil=school.p2)
    assert row["seq"] == 2
    assert row["pupilIds"] == [school.p2]
    assert [(c["pupilId"], c["activityId"]) for c in row["cells"]] == [
        (school.p2, a) for a in ("A1", "A2", "A3")
    ]
    assert {c["seq"] for c in row["cells"]} == {2}
    assert row["cells"][0]["eventId"] == "read:assignment_results:G1:L1:2"
    column = await read(school.conn, activity="A2")
    assert [a["activityId"] for a in column["activities"]] == ["A2"]
    assert sorted(c["pupilId"] for c in column["cells"]) == sorted([school.p1, school.p2])
    cell = await read(school.conn, pupil=school.p2, activity="A2")
    assert [(c["pupilId"], c["activityId"], c["status"]) for c in cell["cells"]] == [
        (school.p2, "A2", "submitted")
    ]
    other_group = await read(school.conn, group="G2")
    assert other_group["pupilIds"] == [school.p1]
    assert other_group["seq"] is None


async def test_a_teacher_of_the_group_may_read(school: School) -> None:
    result = await read_as(school.conn, {"role": "authenticated", "sub": school.t1})
    assert result["groupId"] == "G1"
    assert len(result["cells"]) == 6


async def test_the_service_role_may_read(school: School) -> None:
    result = await read_as(school.conn, {"role": "service_role"}, role="service_role")
    assert result["groupId"] == "G1"


@pytest.mark.parametrize("who", ["pupil", "stranger", "teacher_of_another_group", "no_sub"])
async def test_others_are_refused(school: School, who: str) -> None:
    await school.conn.execute(
        "insert into public.group_members values ('G2', $1::uuid, 'teacher')", school.p3
    )
    claims = {
        "pupil": {"role": "authenticated", "sub": school.p2},
        "stranger": {"role": "authenticated", "sub": "00000000-0000-4000-8000-000000000000"},
        "teacher_of_another_group": {"role": "authenticated", "sub": school.p3},
        "no_sub": {"role": "authenticated"},
    }[who]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="not allowed to read"):
        await read_as(school.conn, claims)


async def test_anon_cannot_even_call_it(school: School) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await read_as(school.conn, {"role": "anon"}, role="anon")


async def test_an_unassigned_lesson_is_an_error_that_says_so(school: School) -> None:
    with pytest.raises(asyncpg.NoDataFoundError, match="lesson L2 is not assigned to group G1"):
        await read(school.conn, lesson="L2")
