"""The pure reducer, driven by the case table it shares with the TypeScript reducer."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from daemon.client import matrix
from daemon.client.matrix import Matrix, RefetchRequest

CASES_FILE = Path(__file__).parent.parent / "clients/js/test/fixtures/reducer-cases.json"
DOC: dict[str, Any] = json.loads(CASES_FILE.read_text())

_CELL_KEYS = {
    "pupilId": "pupil_id",
    "activityId": "activity_id",
    "status": "status",
    "score": "score",
    "aiScore": "ai_score",
    "teacherScore": "teacher_score",
    "needsMarking": "needs_marking",
    "submissionId": "submission_id",
    "hasUpload": "has_upload",
    "uploadCount": "upload_count",
    "seq": "seq",
}


def _full_cell(partial: dict[str, Any]) -> dict[str, Any]:
    return {**DOC["cellDefaults"], **partial}


def _snapshot(partial: dict[str, Any]) -> dict[str, Any]:
    return {
        "assignmentId": f"{DOC['groupId']}__{DOC['lessonId']}",
        "groupId": DOC["groupId"],
        "lessonId": DOC["lessonId"],
        "seq": partial.get("seq"),
        "activities": DOC["activities"],
        "pupilIds": partial.get("pupilIds", DOC["pupilIds"]),
        "cells": [_full_cell(c) for c in partial.get("cells", [])],
    }


def _payload(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    if event == "result_cell":
        return _full_cell(payload)
    if event == "result_cells" and isinstance(payload.get("cells"), list):
        return {**payload, "cells": [_full_cell(c) for c in payload["cells"]]}
    return payload


def _request(raw: dict[str, Any]) -> RefetchRequest:
    return RefetchRequest(
        scope=raw["scope"],
        reason=raw["reason"],
        pupil_id=raw.get("pupilId"),
        activity_id=raw.get("activityId"),
    )


def _effect_json(effect: RefetchRequest) -> dict[str, Any]:
    return {
        "scope": effect.scope,
        "reason": effect.reason,
        "pupilId": effect.pupil_id,
        "activityId": effect.activity_id,
    }


def _run(case: dict[str, Any]) -> Matrix:
    state = matrix.empty(DOC["groupId"], DOC["lessonId"])
    for index, step in enumerate(case["steps"]):
        if step["op"] == "start":
            state, effects = matrix.start(state)
        elif step["op"] == "broadcast":
            state, effects = matrix.apply_broadcast(
                state, step["event"], _payload(step["event"], step["payload"])
            )
        else:
            snapshot = matrix.parse_snapshot(_snapshot(step["snapshot"]))
            state, effects = matrix.apply_snapshot(state, snapshot, _request(step["request"]))
        got = [_effect_json(e) for e in effects]
        assert got == step["expectEffects"], f"step {index} ({step['op']}) effects"
    return state


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_reducer_case(case: dict[str, Any]) -> None:
    state = _run(case)
    expect = case["expect"]
    if "lastSeq" in expect:
        assert state.last_seq == expect["lastSeq"]
    if "loaded" in expect:
        assert state.loaded is expect["loaded"]
    if "pendingAssignment" in expect:
        assert state.assignment_refetch_pending is expect["pendingAssignment"]
    if "requiredSeq" in expect:
        assert state.required_seq == expect["requiredSeq"]
    if "pupilIds" in expect:
        assert list(state.pupil_ids) == expect["pupilIds"]
    if "activityIds" in expect:
        assert [a.activity_id for a in state.activities] == expect["activityIds"]
    if "cellCount" in expect:
        assert len(state.cells) == expect["cellCount"]
    for want in expect.get("cells", []):
        cell = state.cell(want["pupilId"], want["activityId"])
        assert cell is not None, want
        got = asdict(cell)
        for key, value in want.items():
            assert got[_CELL_KEYS[key]] == value, (key, want)
    counters = asdict(state.counters)
    for key, value in expect.get("counters", {}).items():
        assert counters[key] == value, key


def test_cases_cover_every_event_and_scope() -> None:
    """Guards the table itself: every event and every refresh scope is exercised."""
    events = {s["event"] for c in DOC["cases"] for s in c["steps"] if s["op"] == "broadcast"}
    assert {"result_cell", "result_cells", "result_refresh"} <= events
    scopes = {
        s["payload"]["scope"]
        for c in DOC["cases"]
        for s in c["steps"]
        if s["op"] == "broadcast" and s["event"] == "result_refresh"
    }
    assert scopes == set(matrix.SCOPES)


def test_parse_cell_rejects_what_payload_md_forbids() -> None:
    good = _full_cell({"pupilId": "p", "activityId": "a", "score": "7.5"})
    assert matrix.parse_cell(good).score == 7.5
    for bad in (
        {"status": "done"},
        {"pupilId": ""},
        {"score": True},
        {"uploadCount": 1.5},
        {"ai": "yes"},
        {"score": "NaN"},
    ):
        with pytest.raises(matrix.MalformedPayload):
            matrix.parse_cell({**good, **bad})


def test_parse_cell_reads_ai_metadata() -> None:
    cell = matrix.parse_cell(
        _full_cell(
            {
                "pupilId": "p",
                "activityId": "a",
                "status": "ai_marked",
                "ai": {"model": "m-1", "feedbackAt": "2026-01-01T00:00:00Z", "hasFeedback": True},
                "uploadCount": 2,
                "hasUpload": True,
            }
        )
    )
    assert cell.ai == matrix.AiInfo(
        model="m-1", feedback_at="2026-01-01T00:00:00Z", has_feedback=True
    )
    assert (cell.upload_count, cell.has_upload) == (2, True)


PARSING: dict[str, Any] = json.loads((CASES_FILE.parent / "cell-parsing.json").read_text())


@pytest.mark.parametrize(
    "case",
    PARSING["cases"],
    ids=[f"{c['key']}={json.dumps(c['value'])}" for c in PARSING["cases"]],
)
def test_a_cell_field_is_read_as_the_typescript_client_reads_it(case: dict[str, Any]) -> None:
    payload = {**PARSING["cell"], case["key"]: case["value"]}
    if case["expect"] == "malformed":
        with pytest.raises(matrix.MalformedPayload):
            matrix.parse_cell(payload)
        return
    cell = matrix.parse_cell(payload)
    assert asdict(cell)[_CELL_KEYS[case["key"]]] == case["expect"]
