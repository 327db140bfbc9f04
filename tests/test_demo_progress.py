"""The demo's progress line (plain mode), from the views' state."""

from __future__ import annotations

from collections import Counter

from daemon.client.matrix import Activity, Cell, Counters, Matrix
from daemon.client.subscription import ClientStatus
from daemon.demo.runner import progress_line


def _view(submitted: int, *, gaps: int = 0, received: int = 0) -> tuple[Matrix, ClientStatus]:
    activities = (Activity("a1", "One", "text", 1), Activity("a2", "Two", "upload", 2))
    pupils = ("p1", "p2", "p3")
    keys = [(p, a.activity_id) for p in pupils for a in activities]
    cells = {
        key: Cell(key[0], key[1], "submitted" if i < submitted else "not_submitted")
        for i, key in enumerate(keys)
    }
    matrix = Matrix("g", "l", activities, pupils, cells, counters=Counters(gaps=gaps))
    return matrix, ClientStatus(connection="subscribed", messages_received=received)


def test_counts_writes_messages_cells_and_gaps_over_every_view() -> None:
    line = progress_line(
        6.2,
        20,
        Counter(answer=5, upload=2),
        [_view(4, received=9), _view(1, gaps=1, received=3)],
    )
    assert line == (
        "demo 6/20 s: 7 writes simulated, 12 messages received, 5 of 12 cells submitted, "
        "1 gaps, views subscribed"
    )


def test_names_every_connection_state_once() -> None:
    polling = (_view(0)[0], ClientStatus(connection="polling"))
    line = progress_line(0, 5, Counter(), [_view(0), polling, _view(0)])
    assert line.endswith("views polling/subscribed")


def test_a_demo_without_an_end_shows_the_time_so_far() -> None:
    assert progress_line(12.4, None, Counter(), [_view(0)]).startswith("demo 12 s: ")
