"""Unit tests of the pure message planner (daemon.pipeline.payload)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from daemon.client.matrix import channel_name
from daemon.pipeline.payload import (
    ChannelItem,
    NotAnObject,
    PlannedMessage,
    channel_coordinates,
    encode_payload,
    event_id,
    open_cell,
    plan_channel,
)

CHANNEL = "assignment_results:G1:L1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def open_with(state: str | None, **given: str) -> bytes:
    """open_cell with every coordinate and change defaulted, `given` overriding."""
    defaults = {
        "group_id": "G1",
        "lesson_id": "L1",
        "activity_id": "A1",
        "pupil_id": "P1",
        "op": "insert",
        "source": "pupil",
        "changed_at": "2026-01-01T00:00:00.000000Z",
    }
    return open_cell(state, **{**defaults, **given})


def opened(n: int, pad: int = 0) -> bytes:
    """A cell as the store opens it, on a state printed the way PostgreSQL prints jsonb."""
    state = json.dumps({"status": "submitted", "score": None, "pad": "x" * pad})
    return open_with(state, activity_id=f"A{n}", pupil_id=f"P{n}")


def cells(message: PlannedMessage) -> list[dict[str, Any]]:
    payload = message.payload(1)
    return list(payload["cells"]) if message.event == "result_cells" else [payload]


def item(n: int, *, cell: bool = True, pad: int = 0, channel: str = CHANNEL) -> ChannelItem:
    body = opened(n, pad) if cell else None
    return ChannelItem(
        channel=channel,
        group_id="G1",
        lesson_id="L1",
        activity_id=f"A{n}",
        pupil_id=f"P{n}",
        cell=body,
        oldest_change_at=T0 + timedelta(seconds=n),
        order=n,
    )


def plan(items: list[ChannelItem], budget: int = 200_000, most: int = 10) -> list[PlannedMessage]:
    return plan_channel(items, max_payload_bytes=budget, max_messages=most)


def test_one_cell_is_a_result_cell_stamped_with_its_seq() -> None:
    [message] = plan([item(1)])
    assert message.event == "result_cell"
    assert message.oldest_change_at == T0 + timedelta(seconds=1)
    payload = message.payload(7)
    assert payload["eventId"] == event_id(CHANNEL, 7) == f"{CHANNEL}:7"
    assert (payload["seq"], payload["prevSeq"], payload["activityId"]) == (7, 6, "A1")
    assert message.payload(1)["prevSeq"] is None


def test_several_cells_go_in_change_order_into_one_result_cells() -> None:
    [message] = plan([item(3), item(1), item(2)])
    assert message.event == "result_cells"
    assert [c["activityId"] for c in cells(message)] == ["A1", "A2", "A3"]
    assert message.oldest_change_at == T0 + timedelta(seconds=1)
    payload = message.payload(4)
    assert payload["assignmentId"] == "G1__L1"
    assert [c["seq"] for c in payload["cells"]] == [4, 4, 4]
    assert {c["eventId"] for c in payload["cells"]} == {payload["eventId"]}


def test_splitting_respects_the_budget_even_with_the_largest_seq() -> None:
    items = [item(n, pad=300) for n in range(1, 21)]
    messages = plan(items, budget=1_500, most=100)
    assert len(messages) > 1
    assert [c["activityId"] for m in messages for c in cells(m)] == [f"A{n}" for n in range(1, 21)]
    for message in messages:
        assert len(message.encode(2**63 - 1)) <= 1_500
    # Full, too: one more cell would not have fitted.
    first, second = messages[0], messages[1]
    grown = PlannedMessage(**{**_fields(first), "cells": (*first.cells, second.cells[0])})
    assert len(grown.encode(2**63 - 1)) > 1_500


def test_a_cell_too_large_alone_becomes_a_cell_refresh() -> None:
    [single] = plan([item(1, pad=5_000)], budget=2_000)
    assert single.event == "result_refresh"
    assert single.refresh is not None
    assert (single.refresh.scope, single.refresh.reason) == ("cell", "too_large")
    messages = plan([item(1), item(2, pad=5_000), item(3)], budget=2_000)
    assert [m.event for m in messages] == ["result_cells", "result_refresh"]
    assert [c["activityId"] for c in cells(messages[0])] == ["A1", "A3"]
    assert messages[1].payload(9) == {
        "assignmentId": "G1__L1",
        "groupId": "G1",
        "lessonId": "L1",
        "scope": "cell",
        "pupilId": "P2",
        "activityId": "A2",
        "reason": "too_large",
        "eventId": f"{CHANNEL}:9",
        "seq": 9,
        "prevSeq": 8,
    }


def test_unenriched_cells_become_enrich_failed_refreshes() -> None:
    messages = plan([item(1), item(2, cell=False)])
    assert [m.event for m in messages] == ["result_cell", "result_refresh"]
    assert messages[1].refresh is not None
    assert messages[1].refresh.reason == "enrich_failed"
    assert messages[1].cells == ()


def test_more_messages_than_allowed_become_one_assignment_refresh() -> None:
    messages = plan([item(n, pad=300) for n in range(1, 21)], budget=1_500, most=3)
    assert len(messages) == 1
    refresh = messages[0]
    assert refresh.refresh is not None
    assert (refresh.refresh.scope, refresh.refresh.reason) == ("assignment", "backlog")
    assert refresh.oldest_change_at == T0 + timedelta(seconds=1)
    failed = plan([item(n, cell=False) for n in range(1, 5)], most=3)
    assert failed[0].refresh is not None
    assert failed[0].refresh.reason == "enrich_failed"


def test_items_of_several_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="one channel"):
        plan([item(1), item(2, channel="assignment_results:G2:L1")])
    assert plan([]) == []


def test_encoding_is_compact_and_keeps_unicode() -> None:
    assert encode_payload({"a": 1, "name": "Zoë"}) == '{"a":1,"name":"Zoë"}'.encode()


def _fields(message: PlannedMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in PlannedMessage.__slots__}


def test_an_opened_cell_is_the_state_plus_coordinates_and_change_then_the_stamp() -> None:
    [message] = plan([item(5)])
    assert message.payload(3) == {
        "status": "submitted",
        "score": None,
        "pad": "",
        "assignmentId": "G1__L1",
        "groupId": "G1",
        "lessonId": "L1",
        "activityId": "A5",
        "pupilId": "P5",
        "op": "insert",
        "source": "pupil",
        "changedAt": "2026-01-01T00:00:00.000000Z",
        "eventId": f"{CHANNEL}:3",
        "seq": 3,
        "prevSeq": 2,
    }


def test_the_added_keys_win_over_the_same_keys_in_the_state_and_text_stays_intact() -> None:
    state = (
        '{"op": "forged", "seq": -1, "note": "a \\"quoted\\" } brace, Zoë", "n": [1, {"x": null}]}'
    )
    cell = open_with(state, group_id='G"1', op="update", source="ai")
    decoded = orjson.loads(cell + b"}")
    assert decoded["op"] == "update"
    assert cell.count(b'"op"') == 1
    assert b'"seq"' not in cell  # the stamp adds it, once
    assert decoded["note"] == 'a "quoted" } brace, Zoë'
    assert decoded["n"] == [1, {"x": None}]
    assert decoded["assignmentId"] == 'G"1__L1'
    empty = open_with("{}", group_id="G")
    assert orjson.loads(empty + b"}")["groupId"] == "G"


@pytest.mark.parametrize("state", ["null", "[1, 2]", '"text"', "", None])
def test_a_state_that_is_no_object_is_refused(state: str | None) -> None:
    with pytest.raises(NotAnObject):
        open_with(state)


def test_planned_sizes_are_the_encoded_sizes() -> None:
    """The planner sizes cells arithmetically; the encoder must agree byte for byte."""
    for count in (2, 3, 7):
        items = [item(n, pad=n * 13) for n in range(1, count + 1)]
        cell_budget = len(plan(items)[0].encode(2**63 - 1))
        [exact] = plan(items, budget=cell_budget)
        assert exact.event == "result_cells"
        assert len(exact.cells) == count
        assert len(plan(items, budget=cell_budget - 1)) == 2


@pytest.mark.parametrize(
    ("group", "lesson"), [("G1", "L1"), ("7b", "lesson:2"), ("g", ""), ("g-ü", "l::x")]
)
def test_a_channel_name_gives_back_its_group_and_lesson(group: str, lesson: str) -> None:
    """The inverse of the channel's name (the client's channel_name, the SQL of 0012), for
    every group that has a channel: its id has no ':', the lesson's may."""
    assert channel_coordinates(channel_name(group, lesson)) == (group, lesson)


@pytest.mark.parametrize("name", ["assignment_results:G1", "results:G1:L1", "G1:L1", ""])
def test_a_name_that_is_no_results_channel_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an assignment results channel"):
        channel_coordinates(name)
