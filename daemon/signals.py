"""Short commands (migrate, check): SIGINT or SIGTERM interrupts them at once, even mid-connect.

asyncio.run's own Ctrl-C handling is installed only when SIGINT has its default handler; a
process started in the background of a script inherits SIGINT ignored, and SIGTERM would kill
it without its `finally` blocks. Both now cancel the work, which rolls back what it had begun,
and the command exits 130 (interrupted).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_interruptibly(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main); a stop signal cancels it and raises KeyboardInterrupt (exit 130)."""
    interrupted = False

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def interrupt() -> None:
            nonlocal interrupted
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
