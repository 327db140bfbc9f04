"""Stop signals: SIGINT or SIGTERM interrupts a command at once, even mid-connect.

asyncio.run's own Ctrl-C handling is installed only when SIGINT has its default handler; a
process started in the background of a script inherits SIGINT ignored, and SIGTERM would kill
it without its `finally` blocks. Both now cancel the work, which rolls back what it had begun,
and the command exits 130 (interrupted).

A long-running command (`demo`) that wants a polite stop once it is up passes a `GracefulStop`
and arms it when its start-up is done: from then on the first signal only sets `requested`;
a second one cancels, as during start-up.

A command that exits 0 on any stop signal (`hub`, as an orchestrator expects; `watch`) uses
`StopSignals` and `finishes_before` instead: a signal during start-up abandons the start, one
after it asks for a polite stop, and a second one stops waiting for that polite stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterator
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


class StopSignals:
    """SIGINT and SIGTERM as two events: `first` asks for a polite stop, `again` (any later
    signal) for an end to the waiting."""

    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.again = asyncio.Event()

    def received(self) -> None:
        (self.again if self.first.is_set() else self.first).set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.received)
        try:
            yield self
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)


async def finishes_before(
    work: Coroutine[Any, Any, object],
    event: asyncio.Event,
    *,
    again: asyncio.Event | None = None,
) -> bool:
    """Runs `work` unless `event` is set first, in which case `work` is cancelled, its cleanup
    awaited, and the answer is False; `again` set during that cleanup cancels the cleanup too (a
    second signal). An error of `work`, or of its cleanup, propagates; so does a cancellation of
    the caller, which also cancels `work`."""
    running = asyncio.create_task(work)
    waiting = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()
            return True
        running.cancel()
        impatient = asyncio.create_task(_cancel_when(again, running)) if again else None
        try:
            await asyncio.wait({running})  # the work's own CancelledError is not the caller's
        finally:
            if impatient is not None:
                impatient.cancel()
        if not running.cancelled():
            running.result()
        return False
    finally:
        waiting.cancel()
        if not running.done():
            running.cancel()


async def _cancel_when(event: asyncio.Event, task: asyncio.Task[object]) -> None:
    await event.wait()
    task.cancel()


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
