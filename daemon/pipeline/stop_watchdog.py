"""The last resort of a clean stop: the process exits within its bound even if the stop hangs.

The service bounds every step of its shutdown, but a library that swallows a cancellation (or
blocks the event loop) could still keep it from returning. A timer thread does not depend on the
event loop: if the process is still there `timeout_s` after the first stop signal, it logs what
was still running and ends the process at once. Nothing is lost: a batch that was in flight stays
staged in the database and is published by the next leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable

from daemon.log import get_logger

log = get_logger(__name__)


class StopWatchdog:
    """`arm()` on the first stop request, `disarm()` once the process is about to exit."""

    def __init__(
        self, timeout_s: float, *, exit_code: int = 0, exit: Callable[[int], object] = os._exit
    ) -> None:
        self.timeout_s = timeout_s
        self._exit_code = exit_code
        self._exit = exit
        self._timer: threading.Timer | None = None

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start counting; later calls (a second signal) do not restart the count."""
        if self._timer is None:
            self._timer = threading.Timer(self.timeout_s, self._fire, args=(loop,))
            self._timer.name = "stop-watchdog"
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        log.error(
            "daemon.stop_timeout",
            timeout_s=self.timeout_s,
            tasks=_running_tasks(loop),
            note="the clean stop overran daemon.shutdown_timeout_s; exiting without it "
            "(the batch in flight stays staged)",
        )
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        self._exit(self._exit_code)


def _running_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Where each task of the (possibly busy) loop waits; read from another thread, best effort."""
    try:
        return sorted(repr(task) for task in asyncio.all_tasks(loop))
    except RuntimeError:  # the set changed while we read it
        return []
