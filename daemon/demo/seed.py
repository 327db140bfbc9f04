"""The demo school: 2 groups, 1 lesson of 6 activities (every kind), 28 pupils, 2 teachers.

Ids are deterministic (uuid5), so a re-seeded database and a printed URL stay valid together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from daemon.sqlfiles import query

_NAMESPACE = uuid.UUID("6b1f3c1e-7d2a-4c55-9a57-2f1f0c6d9e01")

_FIRST_NAMES = [
    "Amara",
    "Ben",
    "Chloe",
    "Dev",
    "Ella",
    "Finn",
    "Grace",
    "Hugo",
    "Isla",
    "Jack",
    "Kai",
    "Lena",
    "Milo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Xia",
    "Yusuf",
    "Zoe",
    "Aled",
    "Bea",
]


@dataclass(frozen=True, slots=True)
class Activity:
    id: str
    title: str
    kind: str  # 'text' | 'upload' | 'choice'
    position: int


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    group_id: str


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class School:
    groups: tuple[Group, ...]
    lesson_id: str
    lesson_title: str
    activities: tuple[Activity, ...]
    teachers: tuple[Person, ...]
    pupils: tuple[Person, ...]

    def teacher_of(self, group_id: str) -> Person:
        return next(t for t in self.teachers if t.group_id == group_id)

    def pupils_of(self, group_id: str) -> tuple[Person, ...]:
        return tuple(p for p in self.pupils if p.group_id == group_id)

    @property
    def names(self) -> dict[str, str]:
        return {p.id: p.name for p in (*self.pupils, *self.teachers)}


def _uid(label: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, label))


def demo_school(pupils_per_group: int = 14) -> School:
    groups = (Group("grp-7a", "Year 7 Science A"), Group("grp-7b", "Year 7 Science B"))
    lesson_id = "lesson-photosynthesis"
    activities = (
        Activity("act-define", "Define it", "text", 1),
        Activity("act-quiz-1", "Quiz: light", "choice", 2),
        Activity("act-diagram", "Leaf diagram", "upload", 3),
        Activity("act-explain", "Explain", "text", 4),
        Activity("act-quiz-2", "Quiz: CO2", "choice", 5),
        Activity("act-photo", "Experiment photo", "upload", 6),
    )
    teachers = (
        Person(_uid("teacher-1"), "Ms Okafor", groups[0].id),
        Person(_uid("teacher-2"), "Mr Lindqvist", groups[1].id),
    )
    pupils = tuple(
        Person(
            _uid(f"pupil-{g}-{i}"),
            _FIRST_NAMES[(g * pupils_per_group + i) % len(_FIRST_NAMES)],
            group.id,
        )
        for g, group in enumerate(groups)
        for i in range(pupils_per_group)
    )
    return School(groups, lesson_id, "Photosynthesis", activities, teachers, pupils)


async def seed(conn: asyncpg.Connection, school: School) -> None:
    """Idempotent: re-seeding updates names and titles, never duplicates."""
    async with conn.transaction():
        await conn.executemany(query("demo_seed_group"), [(g.id, g.name) for g in school.groups])
        await conn.execute(query("demo_seed_lesson"), school.lesson_id, school.lesson_title)
        await conn.executemany(
            query("demo_seed_activity"),
            [(a.id, school.lesson_id, a.title, a.kind, a.position) for a in school.activities],
        )
        members = [(t.group_id, t.id, "teacher") for t in school.teachers]
        members += [(p.group_id, p.id, "pupil") for p in school.pupils]
        await conn.executemany(query("demo_seed_member"), members)
        await conn.executemany(
            query("demo_seed_assignment"), [(g.id, school.lesson_id) for g in school.groups]
        )
