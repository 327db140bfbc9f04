"""Each source of change, staged: the message carries the cell's full, correct state."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from daemon.pipeline.store import OutgoingMessage, Store
from tests.fixtures.pipeline import School

CELL_KEYS = {
    "assignmentId": str,
    "groupId": str,
    "lessonId": str,
    "activityId": str,
    "pupilId": str,
    "submissionId": (str, type(None)),
    "op": str,
    "source": str,
    "status": str,
    "score": (int, float, type(None)),
    "aiScore": (int, float, type(None)),
    "teacherScore": (int, float, type(None)),
    "ai": (dict, type(None)),
    "submittedAt": (str, type(None)),
    "uploadCount": int,
    "hasUpload": bool,
    "needsMarking": bool,
    "changedAt": str,
    "eventId": str,
    "seq": int,
    "prevSeq": (int, type(None)),
}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def stage_all(store: Store) -> list[OutgoingMessage]:
    result = await store.stage_batch(500)
    assert result.claimed > 0
    return await store.pending(100)


async def only_cell(store: Store, channel: str = "assignment_results:G1:L1") -> dict[str, Any]:
    messages = [m for m in await stage_all(store) if m.channel == channel]
    assert len(messages) == 1, messages
    assert messages[0].event == "result_cell"
    return messages[0].payload


async def test_payload_matches_payload_md_key_for_key(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "Gravity"})
    cell = await only_cell(store)
    assert set(cell) == set(CELL_KEYS)
    for key, expected in CELL_KEYS.items():
        assert isinstance(cell[key], expected), (key, cell[key])
    assert cell["assignmentId"] == "G1__L1"
    assert (cell["groupId"], cell["lessonId"], cell["activityId"]) == ("G1", "L1", "A1")
    assert cell["pupilId"] == school.p2
    assert cell["eventId"] == "assignment_results:G1:L1:1"
    assert (cell["seq"], cell["prevSeq"]) == (1, None)
    for key in ("changedAt", "submittedAt"):
        assert ISO_UTC.match(cell[key]), cell[key]
        assert datetime.fromisoformat(cell[key]).utcoffset() is not None


async def test_text_insert_is_submitted_and_needs_marking(school: School, store: Store) -> None:
    sid = await school.submit("A1", school.p2, {"text": "Gravity"})
    cell = await only_cell(store)
    assert cell["submissionId"] == sid
    assert (cell["op"], cell["source"], cell["status"]) == ("insert", "pupil", "submitted")
    assert cell["needsMarking"] is True
    assert (cell["score"], cell["aiScore"], cell["teacherScore"], cell["ai"]) == (
        None,
        None,
        None,
        None,
    )
    assert (cell["uploadCount"], cell["hasUpload"]) == (0, False)


async def test_ai_score_update_is_ai_marked(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "Gravity"})
    await store.ack([m.id for m in await stage_all(store)])
    await school.ai_mark("A1", school.p2, 6.5, feedback="Good start")
    cell = await only_cell(store)
    assert (cell["op"], cell["source"], cell["status"]) == ("update", "ai", "ai_marked")
    assert (cell["score"], cell["aiScore"], cell["teacherScore"]) == (6.5, 6.5, None)
    assert cell["needsMarking"] is False
    ai = cell["ai"]
    assert set(ai) == {"model", "feedbackAt", "hasFeedback"}
    assert ai["model"] == "gpt-test"
    assert ai["hasFeedback"] is True
    assert ISO_UTC.match(ai["feedbackAt"])
    assert (cell["seq"], cell["prevSeq"]) == (2, 1)


async def test_teacher_override_wins_over_the_ai_score(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "Gravity"})
    await school.ai_mark("A1", school.p2, 4)
    await school.teacher_mark("A1", school.p2, 9)
    cell = await only_cell(store)
    assert (cell["source"], cell["status"]) == ("teacher", "teacher_marked")
    assert (cell["score"], cell["aiScore"], cell["teacherScore"]) == (9, 4, 9)
    assert cell["needsMarking"] is False


async def test_delete_clears_the_cell(school: School, store: Store) -> None:
    await school.submit("A1", school.p2, {"text": "Gravity"})
    await store.ack([m.id for m in await stage_all(store)])
    await school.delete("A1", school.p2)
    cell = await only_cell(store)
    assert (cell["op"], cell["source"]) == ("delete", "system")
    assert cell["submissionId"] is None
    assert (cell["status"], cell["needsMarking"], cell["submittedAt"]) == (
        "not_submitted",
        False,
        None,
    )


async def test_upload_without_submission_row_is_submitted(school: School, store: Store) -> None:
    await school.upload(school.path("A2", school.p2))
    cell = await only_cell(store)
    assert (cell["op"], cell["source"], cell["status"]) == ("insert", "upload", "submitted")
    assert (cell["uploadCount"], cell["hasUpload"], cell["needsMarking"]) == (1, True, True)
    assert cell["submissionId"] is None
    assert ISO_UTC.match(cell["submittedAt"])


async def test_deleting_the_last_upload_clears_needs_marking(school: School, store: Store) -> None:
    first, second = school.path("A2", school.p2, "a.pdf"), school.path("A2", school.p2, "b.pdf")
    await school.upload(first)
    await school.upload(second)
    # a placeholder row written by the app for the upload: no answer in its body
    await school.conn.execute(
        "insert into public.submissions (activity_id, user_id) values ('A2', $1)", school.p2
    )
    cell = await only_cell(store)
    assert (cell["uploadCount"], cell["status"], cell["needsMarking"]) == (2, "submitted", True)
    await store.ack([m.id for m in await store.pending(10)])
    await school.delete_upload(first)
    await school.delete_upload(second)
    cell = await only_cell(store)
    assert (cell["op"], cell["source"]) == ("delete", "upload")
    assert (cell["uploadCount"], cell["hasUpload"], cell["needsMarking"]) == (0, False, False)
    assert (cell["status"], cell["submittedAt"]) == ("not_submitted", None)
    assert cell["submissionId"] is not None  # the placeholder row is still there


async def test_placeholder_row_without_answer_or_file_is_not_submitted(
    school: School, store: Store
) -> None:
    for body in ({}, {"text": "   "}, {"choice": None}, {"choice": ""}, {"other": 1}):
        await school.submit("A3", school.p2, body)
        cell = await only_cell(store)
        assert (cell["status"], cell["needsMarking"], cell["submittedAt"]) == (
            "not_submitted",
            False,
            None,
        ), body
        await store.ack([m.id for m in await store.pending(10)])
    await school.submit("A3", school.p2, {"choice": "b"})
    cell = await only_cell(store)
    assert (cell["status"], cell["needsMarking"]) == ("submitted", True)


async def test_upload_path_with_trailing_folder_only_does_not_count(
    school: School, store: Store
) -> None:
    await school.upload(school.path("A2", school.p2, "real.pdf"))
    await school.conn.execute(
        "insert into storage.objects (bucket_id, name) values"
        " ('submissions', $1), ('submissions', $2), ('avatars', $3)",
        school.path("A2", school.p2, ".emptyFolderPlaceholder"),
        f"L1/A2/{school.p2}0/other.pdf",  # a sibling whose name shares the prefix
        school.path("A2", school.p2, "avatar.png"),
    )
    cell = await only_cell(store)
    assert cell["uploadCount"] == 1


@pytest.mark.parametrize(
    ("tail", "counted"),
    [
        ("file.pdf", 1),
        ("deep/er/file.pdf", 1),
        ("dir/", 1),  # a "folder" object below the cell's folder is an object like any other
        ("deep//x", 1),
        ("", 0),  # the cell's folder itself
        (".emptyFolderPlaceholder", 0),  # Storage's folder marker
        ("sub/.emptyFolderPlaceholder", 0),
    ],
)
async def test_an_object_maps_to_its_cell_exactly_when_the_cell_counts_it(
    school: School, tail: str, counted: int
) -> None:
    """Else creating or deleting it would change the cell without an event."""
    name = school.path("A2", school.p2, tail)
    await school.conn.execute(
        "insert into storage.objects (bucket_id, name) values ('submissions', $1)", name
    )
    mapped = await school.conn.fetchrow(
        "select * from results_realtime.object_cell_v1('submissions', $1)", name
    )
    state = await school.conn.fetchval(
        "select state from results_realtime.cell_state_v2(array['A2'], array[$1::uuid])",
        uuid.UUID(school.p2),
    )
    assert json.loads(state)["uploadCount"] == counted
    assert mapped is not None
    assert (mapped["pupil_id"] is not None) == bool(counted), dict(mapped)


async def test_a_pupil_in_two_groups_gets_a_message_on_each_channel(
    school: School, store: Store
) -> None:
    await school.submit("A1", school.p1, {"text": "both"})
    messages = await stage_all(store)
    by_channel = {m.channel: m.payload for m in messages}
    assert set(by_channel) == {"assignment_results:G1:L1", "assignment_results:G2:L1"}
    assert by_channel["assignment_results:G2:L1"]["groupId"] == "G2"
    assert by_channel["assignment_results:G2:L1"]["assignmentId"] == "G2__L1"
    assert all(m.seq == 1 for m in messages)


async def test_a_cell_outside_every_assignment_is_skipped(school: School, store: Store) -> None:
    await school.submit("B1", school.p1, {"text": "lesson not assigned"})
    await school.submit("A1", school.p3, {"text": "pupil in no group"})
    await school.conn.execute(
        "insert into results_realtime.outbox (activity_id, pupil_id, op,"
        " source) values ('GONE', $1, 'update', 'ai')",
        school.p1,
    )
    result = await store.stage_batch(100)
    assert (result.claimed, result.staged, result.skipped) == (3, 0, 3)
    assert await store.outbox_depth() == 0
    assert await store.pending(10) == []
