"""Stop signals: SIGINT or SIGTERM interrupts a command at once, even mid-connect.

asyncio.run's own Ctrl-C handling is installed only when SIGINT has its default handler; a
process started in the background of a script inherits SIGINT ignored, and SIGTERM would kill
it without its `finally` blocks. Both now cancel the work, which rolls back what it had begun,
and the command exits 130 (interrupted).

A long-running command (`demo`) that wants a polite stop once it is up passes a `GracefulStop`
and arms it when its start-up is done: from then on the first signal only sets `requested`;
a second one cancels, as during start-up.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """A stop request the command answers itself, once `arm()`ed (after its start-up)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.armed = False

    def arm(self) -> None:
        self.armed = True

    def take(self) -> bool:
        """Called on a signal: True if it was taken as a polite stop, False to interrupt."""
        if not self.armed or self.requested.is_set():
            return False
        self.requested.set()
        return True


def run_interruptibly(main: Coroutine[Any, Any, T], graceful: GracefulStop | None = None) -> T:
    """asyncio.run(main); a stop signal cancels it and raises KeyboardInterrupt (exit 130),
    unless `graceful` is armed and takes it (the first signal after start-up)."""
    interrupted = False

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def interrupt() -> None:
            nonlocal interrupted
            if graceful is not None and graceful.take():
                return
            interrupted = True
            task.cancel()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, interrupt)
        try:
            return await main
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
