"""realtime-py (vsn 1.0.0) and supabase-js (vsn 2.0.0) on one channel see the same messages in
the same order, whatever the source: REST batch, REST single, a client's websocket broadcast."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.fixtures.hub import RunningHub
from tests.fixtures.hub_clients import TIMEOUT, channel_config, post_batch, seed_group, subscribed

JS = Path(__file__).resolve().parents[1] / "clients" / "js"
SUBSCRIBER = JS / "test" / "support" / "subscribe.mjs"


async def _line(stream: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(stream.readline(), TIMEOUT * 3)
    assert line, "the supabase-js subscriber exited"
    result: dict[str, Any] = json.loads(line)
    return result


async def test_python_and_js_clients_receive_the_same_messages_in_order(
    hub: RunningHub, db: asyncpg.Connection
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is required (make install-js)"
    group = await seed_group(db)
    teacher = hub.token(sub=group.teacher)
    proc = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        str(SUBSCRIBER),
        hub.url,
        hub.anon_key,
        teacher,
        group.topic(),
        "true",
        cwd=JS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        async with (
            subscribed(hub, group.topic(), teacher) as py,
            subscribed(hub, group.topic(), hub.service_role_key, channel_config(self=False)) as svc,
            aiohttp.ClientSession() as session,
        ):
            assert (await py.state())[0].value == "SUBSCRIBED"
            assert (await svc.state())[0].value == "SUBSCRIBED"
            assert (await _line(proc.stdout)) == {"status": "SUBSCRIBED", "error": None}
            sent: list[dict[str, Any]] = []
            got_py: list[dict[str, Any]] = []
            for n in range(30):
                payload = {"n": n, "text": f"message {n} ✓"}
                sent.append({"event": f"e{n % 3}", "payload": payload})
                match n % 3:
                    case 0:
                        message = {"topic": group.topic(), "event": "e0", "payload": payload}
                        status, _ = await post_batch(session, hub, [{**message, "private": True}])
                        assert status == 202
                    case 1:
                        async with session.post(
                            f"{hub.url}/api/broadcast/{group.topic()}/events/e1?private=true",
                            json=payload,
                            headers={"apikey": hub.service_role_key},
                        ) as resp:
                            assert resp.status == 202
                    case _:
                        await svc.channel.send_broadcast("e2", payload)
                # Three sources race each other; waiting for each delivery fixes the sent order.
                got_py.append(await py.message())
            got_js = [(await _line(proc.stdout))["broadcast"] for _ in sent]
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert got_py == sent
    assert [{"event": m["event"], "payload": m["payload"]} for m in got_js] == sent
    assert all(m["type"] == "broadcast" for m in got_js)
