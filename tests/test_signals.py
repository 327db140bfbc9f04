"""Stop signals: the race between a service's start or stop and a signal (finishes_before),
and a signal that lands before any command has its own handlers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from daemon.signals import StopSignals, finishes_before


async def test_work_that_finishes_first_is_true() -> None:
    async def work() -> None:
        await asyncio.sleep(0)

    assert await finishes_before(work(), asyncio.Event()) is True


async def test_an_event_first_cancels_the_work_and_awaits_its_cleanup() -> None:
    cleaned = asyncio.Event()
    entered = asyncio.Event()
    stop = asyncio.Event()

    async def work() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()  # never set: only the cancellation ends it
        finally:
            cleaned.set()

    async def signal_once_entered() -> None:
        await entered.wait()
        stop.set()

    signaller = asyncio.create_task(signal_once_entered())
    assert await finishes_before(work(), stop) is False
    assert cleaned.is_set()
    await signaller


async def test_an_error_of_the_work_propagates() -> None:
    async def work() -> None:
        raise OSError("port taken")

    with pytest.raises(OSError, match="port taken"):
        await finishes_before(work(), asyncio.Event())


def test_the_first_signal_asks_politely_and_any_later_one_stops_the_wait() -> None:
    signals = StopSignals()
    signals.received()
    assert (signals.first.is_set(), signals.again.is_set()) == (True, False)
    signals.received()
    signals.received()
    assert (signals.first.is_set(), signals.again.is_set()) == (True, True)


async def test_again_cuts_short_a_cleanup_that_hangs() -> None:
    """A second signal while the cancelled work still cleans up (a pool that never closes)."""
    stop, again = asyncio.Event(), asyncio.Event()
    cleaning = asyncio.Event()
    interrupted = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            try:
                await asyncio.Event().wait()  # a cleanup that would never end
            except asyncio.CancelledError:
                interrupted.set()
                raise

    async def signal_twice() -> None:
        stop.set()
        await cleaning.wait()
        again.set()

    signaller = asyncio.create_task(signal_twice())
    assert await finishes_before(work(), stop, again=again) is False
    assert interrupted.is_set()
    await signaller


async def test_a_cancelled_caller_stays_cancelled_and_cancels_the_work() -> None:
    entered, ended = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    caller = asyncio.create_task(finishes_before(work(), asyncio.Event()))
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await ended.wait()  # the work was cancelled too (this would hang otherwise)


# A process that sends itself SIGTERM while the CLI imports a command's module: the moment a
# `docker stop` right after `docker run` lands in, before any command has its own handlers.
_SIGTERM_DURING_IMPORTS = """
import importlib, os, signal, sys
from daemon import cli

real_import = importlib.import_module

def import_module(name, package=None):
    if name == "daemon.commands.check":  # the third of six: others are imported, others not yet
        os.kill(os.getpid(), signal.SIGTERM)
    return real_import(name, package)

cli.importlib.import_module = import_module
code = cli.main(sys.argv[1:])
print("handler restored:", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["run"], 0), (["hub"], 0), (["watch", "--group", "g"], 0), (["migrate"], 130),
     (["check"], 130), (["demo"], 130)],
)  # fmt: skip
def test_sigterm_while_the_cli_still_imports_exits_as_a_stop_of_that_command(
    argv: list[str], expected: int
) -> None:
    """Not 143 (killed by the signal): the commands an orchestrator stops exit 0, the others
    130 as after Ctrl-C; the process's own SIGTERM handler is back once main returns."""
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_DURING_IMPORTS, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == expected, done.stderr
    assert "handler restored: True" in done.stdout
    assert "Traceback" not in done.stderr
