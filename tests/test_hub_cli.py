"""`results-realtime hub` as a subprocess: start-up line, a port that is taken, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from daemon.tokens import mint_token

BIN = Path(sys.executable).parent / "results-realtime"


def _env(database_url: str, jwt_secret: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "SUPABASE_JWT_SECRET": jwt_secret}


def test_port_in_use_is_a_clear_error(database_url: str, jwt_secret: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [str(BIN), "hub", "--port", str(port)],
            env=_env(database_url, jwt_secret),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 5
    assert f"127.0.0.1:{port}: the port is already in use" in proc.stderr


async def test_serves_then_exits_0_on_sigterm(database_url: str, jwt_secret: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(BIN),
        "hub",
        "--port",
        "0",
        env=_env(database_url, jwt_secret),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        while True:  # JSON lines: stdout is not a TTY
            event = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            if event["event"] == "hub.started":
                break
        token = mint_token(jwt_secret, role="anon")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{event['url']}/realtime/v1/websocket?apikey={token}") as ws,
        ):
            heartbeat = {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "1"}
            await ws.send_json(heartbeat)
            assert (await ws.receive_json(timeout=10))["payload"]["status"] == "ok"
            proc.send_signal(signal.SIGTERM)
            closing = await ws.receive(timeout=10)
            assert closing.data == 1001
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
