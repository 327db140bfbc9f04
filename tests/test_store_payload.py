"""Unit tests of the pure message planner (daemon.pipeline.payload)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.pipeline.payload import (
    ChannelItem,
    PlannedMessage,
    encode_payload,
    event_id,
    plan_channel,
)

CHANNEL = "assignment_results:G1:L1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def item(n: int, *, cell: bool = True, pad: int = 0, channel: str = CHANNEL) -> ChannelItem:
    body: dict[str, Any] | None = (
        {"activityId": f"A{n}", "pupilId": f"P{n}", "status": "submitted", "pad": "x" * pad}
        if cell
        else None
    )
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
    assert [c["activityId"] for c in message.cells] == ["A1", "A2", "A3"]
    assert message.oldest_change_at == T0 + timedelta(seconds=1)
    payload = message.payload(4)
    assert payload["assignmentId"] == "G1__L1"
    assert [c["seq"] for c in payload["cells"]] == [4, 4, 4]
    assert {c["eventId"] for c in payload["cells"]} == {payload["eventId"]}


def test_splitting_respects_the_budget_even_with_the_largest_seq() -> None:
    items = [item(n, pad=300) for n in range(1, 21)]
    messages = plan(items, budget=1_500, most=100)
    assert len(messages) > 1
    assert [c["activityId"] for m in messages for c in m.cells] == [f"A{n}" for n in range(1, 21)]
    for message in messages:
        assert len(encode_payload(message.payload(2**63 - 1))) <= 1_500


def test_a_cell_too_large_alone_becomes_a_cell_refresh() -> None:
    [single] = plan([item(1, pad=5_000)], budget=2_000)
    assert single.event == "result_refresh"
    assert single.refresh is not None
    assert (single.refresh.scope, single.refresh.reason) == ("cell", "too_large")
    messages = plan([item(1), item(2, pad=5_000), item(3)], budget=2_000)
    assert [m.event for m in messages] == ["result_cells", "result_refresh"]
    assert [c["activityId"] for c in messages[0].cells] == ["A1", "A3"]
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
