"""A simulated lesson: pupils answer and upload, the AI marks, a teacher overrides, files go away.

Everything is a plain SQL write, exactly what the app, Storage and the AI worker would do; the
triggers turn them into events. The plan is generated up front from a seeded RNG (reproducible)
and replayed on a clock scaled by `speed`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from daemon.demo.seed import School
from daemon.log import get_logger
from daemon.sqlfiles import query

log = get_logger(__name__)

ActionKind = Literal["answer", "upload", "delete_upload", "ai_mark", "teacher_mark"]

_ANSWERS = (
    "Plants turn light, water and CO2 into glucose and oxygen.",
    "Chlorophyll absorbs light energy in the chloroplasts.",
    "It happens in the leaves, mostly in palisade cells.",
    "Oxygen is released as a by-product through the stomata.",
    "Glucose is used for respiration or stored as starch.",
)
_CHOICES = ("A", "B", "C", "D")
AI_MODEL = "marker-demo-1"


@dataclass(frozen=True, slots=True)
class Action:
    at_s: float  # seconds after the start, at speed 1
    kind: ActionKind
    activity_id: str
    pupil_id: str
    body: str | None = None  # JSON answer body
    object_name: str | None = None
    score: float | None = None
    feedback: str | None = None


def plan_lesson(school: School, *, seed: int = 7, span_s: float = 120.0) -> list[Action]:
    """The whole lesson as timed actions, ordered by time, fitted into `span_s` seconds."""
    rng = random.Random(seed)
    actions: list[Action] = []
    for pupil in school.pupils:
        pace = rng.uniform(0.7, 1.4)
        t = rng.uniform(1.0, 12.0)
        for activity in school.activities:
            t += rng.uniform(6.0, 16.0) * pace
            if rng.random() > 0.88:
                continue  # skipped this one
            actions.extend(_activity_actions(rng, school, activity.kind, activity.id, pupil.id, t))
    if not actions:
        return []
    scale = min(1.0, span_s / max(a.at_s for a in actions))
    fitted = [
        Action(
            round(a.at_s * scale, 3),
            a.kind,
            a.activity_id,
            a.pupil_id,
            a.body,
            a.object_name,
            a.score,
            a.feedback,
        )
        for a in actions
    ]
    return sorted(fitted, key=lambda a: a.at_s)


def _activity_actions(
    rng: random.Random, school: School, kind: str, activity_id: str, pupil_id: str, t: float
) -> list[Action]:
    out: list[Action] = []
    if kind == "upload":
        name = f"{school.lesson_id}/{activity_id}/{pupil_id}/photo-{rng.randrange(1000, 9999)}.jpg"
        out.append(Action(t, "upload", activity_id, pupil_id, object_name=name))
        if rng.random() < 0.3:
            second = name.replace(".jpg", "-2.jpg")
            out.append(
                Action(t + rng.uniform(1, 5), "upload", activity_id, pupil_id, object_name=second)
            )
            names = [name, second]
        else:
            names = [name]
        if rng.random() < 0.2:
            # Wrong file: the pupil deletes it again, so the cell stops needing marking.
            when = t + rng.uniform(4, 10)
            out.extend(
                Action(when + i * 0.5, "delete_upload", activity_id, pupil_id, object_name=n)
                for i, n in enumerate(names)
            )
            return out
        if rng.random() < 0.7:
            out.extend(_marks(rng, activity_id, pupil_id, t + rng.uniform(8, 25)))
        return out
    if kind == "choice":
        body = json.dumps({"choice": rng.choice(_CHOICES)})
        out.append(Action(t, "answer", activity_id, pupil_id, body=body))
        out.extend(_marks(rng, activity_id, pupil_id, t + rng.uniform(1, 4), choice=True))
        return out
    body = json.dumps({"text": rng.choice(_ANSWERS)})
    out.append(Action(t, "answer", activity_id, pupil_id, body=body))
    if rng.random() < 0.92:
        out.extend(_marks(rng, activity_id, pupil_id, t + rng.uniform(3, 12)))
    return out


def _marks(
    rng: random.Random, activity_id: str, pupil_id: str, t: float, *, choice: bool = False
) -> list[Action]:
    score = float(rng.choice((0, 10))) if choice else float(rng.randint(2, 10))
    out = [
        Action(t, "ai_mark", activity_id, pupil_id, score=score, feedback="Good start; add detail.")
    ]
    if not choice and rng.random() < 0.12:
        teacher = float(min(10, max(0, score + rng.choice((-2, -1, 1, 2)))))
        out.append(
            Action(
                t + rng.uniform(5, 30),
                "teacher_mark",
                activity_id,
                pupil_id,
                score=teacher,
                feedback="Checked by your teacher.",
            )
        )
    return out


async def perform(conn: asyncpg.Connection | asyncpg.Pool, action: Action) -> None:
    """One action as the SQL write the real system would make (its own transaction)."""
    match action.kind:
        case "answer":
            await conn.execute(
                query("demo_submit_answer"), action.activity_id, action.pupil_id, action.body
            )
        case "upload":
            meta = json.dumps({"mimetype": "image/jpeg", "size": 123_456})
            await conn.execute(query("demo_upload_file"), action.object_name, action.pupil_id, meta)
        case "delete_upload":
            await conn.execute(query("demo_delete_file"), action.object_name)
        case "ai_mark":
            await conn.execute(
                query("demo_ai_mark"),
                action.activity_id,
                action.pupil_id,
                action.score,
                AI_MODEL,
                action.feedback,
            )
        case "teacher_mark":
            await conn.execute(
                query("demo_teacher_mark"),
                action.activity_id,
                action.pupil_id,
                action.score,
                action.feedback,
            )


async def simulate(
    pool: asyncpg.Pool,
    actions: Sequence[Action],
    *,
    speed: float = 1.0,
    on_action: Callable[[Action], None] | None = None,
) -> Counter[str]:
    """Replays the plan in real time / speed; returns how many actions of each kind ran."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    done: Counter[str] = Counter()
    for action in actions:
        delay = started + action.at_s / speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the lesson's clock, not synchronisation
        await perform(pool, action)
        done[action.kind] += 1
        if on_action is not None:
            on_action(action)
    log.info("demo.simulation_finished", actions=sum(done.values()), **dict(done))
    return done
