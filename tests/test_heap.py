"""The start-up heap is left out of full collections (daemon.heap)."""

from __future__ import annotations

import gc

from daemon.heap import freeze_startup_heap


def test_freezing_moves_the_existing_objects_out_of_the_collector() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # this process's modules, at least
        assert all(count < frozen for count in gc.get_count())
    finally:
        gc.unfreeze()
