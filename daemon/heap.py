"""Keep the garbage collector's full passes short in the long-running processes."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Once started: what exists now (modules, settings, connections) lives as long as the process.

    A full collection walks every tracked object, so without this each one re-examines the whole
    start-up heap, a pause of several milliseconds on the delivery path. Frozen objects are left
    out of collections; what the work allocates afterwards is collected as usual.
    """
    gc.collect()
    gc.freeze()
