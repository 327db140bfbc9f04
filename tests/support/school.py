"""A small school in the reference schema: the coordinates the pipeline tests write against."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class School:
    lesson: str
    groups: tuple[str, str]
    activities: tuple[str, ...]  # text, upload, choice
    pupils: tuple[uuid.UUID, ...]  # members of groups[0]
    both_groups_pupil: uuid.UUID  # member of both groups
    teacher: uuid.UUID

    def channel(self, group: str | None = None) -> str:
        return f"assignment_results:{group or self.groups[0]}:{self.lesson}"


async def seed_school(db: asyncpg.Connection, *, pupils: int = 6) -> School:
    school = School(
        lesson="l1",
        groups=("g1", "g2"),
        activities=("a-text", "a-upload", "a-choice"),
        pupils=tuple(uuid.uuid4() for _ in range(pupils)),
        both_groups_pupil=uuid.uuid4(),
        teacher=uuid.uuid4(),
    )
    await db.execute("insert into lessons (id, title) values ($1, 'Lesson one')", school.lesson)
    for position, (activity, kind) in enumerate(
        zip(school.activities, ("text", "upload", "choice"), strict=True)
    ):
        await db.execute(
            "insert into activities (id, lesson_id, title, kind, position)"
            " values ($1, $2, $3, $4, $5)",
            activity,
            school.lesson,
            f"Activity {position}",
            kind,
            position,
        )
    for group in school.groups:
        await db.execute("insert into groups (id, name) values ($1, $1)", group)
        await db.execute(
            "insert into assignments (group_id, lesson_id) values ($1, $2)", group, school.lesson
        )
        await db.execute(
            "insert into group_members (group_id, user_id, role) values ($1, $2, 'pupil')",
            group,
            school.both_groups_pupil,
        )
    members = [(school.groups[0], p, "pupil") for p in school.pupils]
    members.append((school.groups[0], school.teacher, "teacher"))
    await db.executemany(
        "insert into group_members (group_id, user_id, role) values ($1, $2, $3)", members
    )
    return school


async def submit_text(db: asyncpg.Connection, activity: str, pupil: uuid.UUID, text: str) -> None:
    await db.execute(
        "insert into submissions (activity_id, user_id, body) values ($1, $2, $3::jsonb)"
        " on conflict (activity_id, user_id) do update"
        " set body = excluded.body, submitted_at = now()",
        activity,
        pupil,
        f'{{"text": "{text}"}}',
    )
