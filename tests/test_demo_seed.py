"""The demo's seeded school and lesson plan (pure), and seeding a real database twice."""

from __future__ import annotations

import asyncpg

from daemon.demo.seed import demo_school, seed
from daemon.demo.simulate import plan_lesson


def test_school_has_the_promised_shape() -> None:
    school = demo_school()
    assert len(school.groups) == 2
    assert len(school.activities) == 6
    assert {a.kind for a in school.activities} == {"text", "upload", "choice"}
    assert len(school.pupils) == 28
    assert len(school.teachers) == 2
    assert len({p.id for p in school.pupils}) == 28
    assert demo_school() == school  # deterministic ids


def test_lesson_plan_is_reproducible_ordered_and_complete() -> None:
    school = demo_school()
    plan = plan_lesson(school, seed=3, span_s=120)
    assert plan == plan_lesson(school, seed=3, span_s=120)
    assert plan != plan_lesson(school, seed=4, span_s=120)
    assert [a.at_s for a in plan] == sorted(a.at_s for a in plan)
    assert plan[-1].at_s <= 120
    kinds = {a.kind for a in plan}
    assert kinds == {"answer", "upload", "delete_upload", "ai_mark", "teacher_mark"}
    uploaded: set[str] = set()
    for action in plan:
        if action.kind == "upload":
            assert action.object_name is not None
            assert action.object_name.startswith(f"{school.lesson_id}/{action.activity_id}/")
            uploaded.add(action.object_name)
        if action.kind == "delete_upload":
            assert action.object_name in uploaded  # only files that exist are deleted


async def test_seeding_twice_changes_nothing(db: asyncpg.Connection) -> None:
    school = demo_school()
    await seed(db, school)
    await seed(db, school)
    assert await db.fetchval("select count(*) from public.group_members") == 30
    assert await db.fetchval("select count(*) from public.activities") == 6
    assert await db.fetchval("select count(*) from public.assignments") == 2
