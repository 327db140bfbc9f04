"""The one-item handoff between the stager and the publisher (pure asyncio, no fakes needed)."""

from __future__ import annotations

import asyncio

from daemon.pipeline.handoff import Handoff


async def test_items_pass_in_order_and_room_waits_for_the_consumer() -> None:
    handoff: Handoff[int] = Handoff()
    assert await handoff.wait_for_room()
    await handoff.put(1)
    room = asyncio.create_task(handoff.wait_for_room())
    await asyncio.sleep(0)  # let it start waiting
    assert not room.done()
    assert await handoff.get() == 1
    assert await asyncio.wait_for(room, 1) is True
    await handoff.put(2)
    assert await handoff.get() == 2


async def test_drained_means_taken_and_done() -> None:
    handoff: Handoff[str] = Handoff()
    await handoff.put("batch")
    drained = asyncio.create_task(handoff.wait_drained())
    assert await handoff.get() == "batch"
    await asyncio.sleep(0)
    assert not drained.done()  # taken, but the publish is still in flight
    await handoff.done()
    assert await asyncio.wait_for(drained, 1) is True


async def test_close_releases_every_waiter_and_the_consumer_drains_first() -> None:
    handoff: Handoff[int] = Handoff()
    await handoff.put(7)
    room = asyncio.create_task(handoff.wait_for_room())
    drained = asyncio.create_task(handoff.wait_drained())
    await asyncio.sleep(0)
    await handoff.close()
    assert await asyncio.wait_for(room, 1) is False
    assert await asyncio.wait_for(drained, 1) is False
    assert await handoff.get() == 7  # what was staged is still handed over
    assert await handoff.get() is None
