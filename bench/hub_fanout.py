"""Hub fan-out benchmark: 1,000 websocket clients over 100 channels, REST batches in.

    .venv/bin/python bench/hub_fanout.py [--clients N] [--channels N] [--batches N] [--reps N]
                                         [--client-procs N]

Two targets, measured in the same run against the same client connections code:
  * hub     - the real hub (own process): private channels joined with a service_role token,
              REST batches of one message per channel (POST /realtime/v1/api/broadcast).
  * ceiling - a plain `websockets` server (own process) that broadcasts the same frames, byte for
              byte, with `websockets.broadcast`, triggered by one small control frame per batch.
The publisher (this process) sends the batches; the client connections live in --client-procs
processes (default 2, connections dealt round-robin) that report their receive counts through
shared memory and their latencies at the end of each phase. One client process was the latency
floor of both targets (its receive loop, not the server); both targets get the same client
processes, so the comparison stays fair. The hub's batches are POSTed without waiting for the
previous batch's 202, as the ceiling's control frames are sent without waiting for anything: for
both, only the window bounds what is outstanding. Each run has two phases:
  * throughput: batches are published as fast as deliveries keep up (at most --window deliveries
    outstanding); frames/s = deliveries / (last receive - first publish); the server's CPU time
    per delivery is read from /proc.
  * latency: a paced phase (--paced-rate deliveries/s) where publish -> receive p50/p99 is
    measured below saturation (time.perf_counter, CLOCK_MONOTONIC, is one clock for all
    processes).
Loopback only; bounded in time (--timeout per phase) and count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAD = "x" * 120  # a ~300-byte frame, like measurements.md §3.4


# -- servers (child processes) -------------------------------------------------------------------
def _run_hub(conn: Any, dsn: str, secret: str) -> None:
    from daemon.config import HubSettings
    from daemon.heap import freeze_startup_heap
    from daemon.hub import run_hub
    from daemon.log import configure_logging

    configure_logging(level="warning", json=True)

    async def main() -> None:
        settings = HubSettings(port=0, max_socket_buffer_kb=1 << 20, max_channels_per_socket=100)
        async with run_hub(settings, database_url=dsn, jwt_secret=secret) as hub:
            freeze_startup_heap()  # as `results-realtime hub` does once started
            conn.send(hub.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def _frame(channel: int, seq: int, sent: float) -> str:
    """The exact text the hub sends to a vsn 1.0.0 subscriber for a REST batch message."""
    payload = json.dumps(
        {"event": "m", "payload": {"t": sent, "seq": seq, "pad": PAD}, "type": "broadcast"},
        separators=(",", ":"),
    )
    return (
        f'{{"topic":"realtime:bench:{channel}","event":"broadcast","payload":{payload},"ref":null}}'
    )


def _run_ceiling(conn: Any, channels: int) -> None:
    async def main() -> None:
        subscribers: dict[int, list[Any]] = defaultdict(list)

        async def handler(ws: Any) -> None:
            async for raw in ws:
                if raw.startswith("batch "):
                    _, seq, sent = raw.split()
                    for c in range(channels):
                        websockets.broadcast(subscribers[c], _frame(c, int(seq), float(sent)))
                    continue
                msg = json.loads(raw)
                if msg["event"] == "phx_join":
                    subscribers[int(msg["topic"].rsplit(":", 1)[1])].append(ws)
                    reply = {"status": "ok", "response": {"postgres_changes": []}}
                    await ws.send(
                        json.dumps(
                            {
                                "topic": msg["topic"],
                                "event": "phx_reply",
                                "payload": reply,
                                "ref": msg["ref"],
                            }
                        )
                    )

        async with websockets.serve(
            handler, "127.0.0.1", 0, compression=None, max_queue=None, ping_interval=None
        ) as server:
            conn.send(next(iter(server.sockets)).getsockname()[1])
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


# -- the client process --------------------------------------------------------------------------
@dataclass
class Phase:
    deliveries: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Clients:
    """One client process's share of the connections; `counter` is shared with the publisher."""

    def __init__(self, url: str, indices: range, channels: int, token: str, counter: Any) -> None:
        self.url, self.indices, self.channels, self.token = url, indices, channels, token
        self.counter = counter
        self.received = 0
        self.latencies: list[float] = []
        self.conns: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        for i in self.indices:
            ws = await websockets.connect(
                self.url, compression=None, max_queue=None, ping_interval=None, open_timeout=30
            )
            topic = f"realtime:bench:{i % self.channels}"
            config = {"broadcast": {"ack": False, "self": False}, "private": True}
            await ws.send(
                json.dumps(
                    {
                        "topic": topic,
                        "event": "phx_join",
                        "ref": "1",
                        "join_ref": "1",
                        "payload": {"config": config, "access_token": self.token},
                    }
                )
            )
            reply = json.loads(await ws.recv())
            assert reply["payload"]["status"] == "ok", reply
            self.conns.append(ws)
        self.tasks = [asyncio.create_task(self._read(ws)) for ws in self.conns]

    async def _read(self, ws: Any) -> None:
        perf = time.perf_counter  # CLOCK_MONOTONIC: comparable across processes
        async for raw in ws:
            start = raw.find('"t":') + 4
            sent = float(raw[start : raw.find(",", start)])
            self.latencies.append((perf() - sent) * 1000)
            self.received += 1
            self.counter.value = self.received

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.conns), return_exceptions=True)

    def reset(self) -> None:
        self.received = self.counter.value = 0
        self.latencies = []


def _run_clients(
    conn: Any, counter: Any, url: str, indices: range, channels: int, token: str
) -> None:
    """A client process: connect and join, then answer the publisher's reset/latencies/stop."""

    async def main() -> None:
        clients = Clients(url, indices, channels, token, counter)
        await clients.open()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
            if command == "reset":
                clients.reset()
                conn.send("ok")
            else:
                conn.send(clients.latencies)
        await clients.close()

    asyncio.run(main())


class ClientPool:
    """The connections spread over --client-procs processes, seen from the publisher."""

    def __init__(self, args: argparse.Namespace, url: str, token: str) -> None:
        ctx = mp.get_context("spawn")
        self.n = args.clients
        self.counters = [ctx.RawValue("q", 0) for _ in range(args.client_procs)]
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for k, counter in enumerate(self.counters):
            parent, child = ctx.Pipe()
            indices = range(k, args.clients, args.client_procs)
            proc = ctx.Process(
                target=_run_clients, args=(child, counter, url, indices, args.channels, token)
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def received(self) -> int:
        return sum(counter.value for counter in self.counters)

    async def _ask(self, command: str | None) -> list[Any]:
        loop = asyncio.get_running_loop()
        if command is not None:
            for pipe in self.pipes:
                pipe.send(command)
        return list(await asyncio.gather(*(loop.run_in_executor(None, p.recv) for p in self.pipes)))

    async def open(self) -> None:
        assert await self._ask(None) == ["ready"] * len(self.pipes)

    async def reset(self) -> None:
        await self._ask("reset")

    async def latencies(self) -> list[float]:
        return [ms for part in await self._ask("latencies") for ms in part]

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            pipe.send("stop")
            proc.join(30)
            if proc.is_alive():
                proc.kill()


async def _wait_received(clients: ClientPool, target: int, deadline: float) -> None:
    while (received := clients.received) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {received} of {target} deliveries arrived")
        await asyncio.sleep(0.002)


async def _phase(
    clients: ClientPool,
    publish: Any,
    batches: int,
    *,
    window: int | None,
    rate: float | None,
    limit_s: float,
) -> Phase:
    per_batch = clients.n  # one message per channel, each to clients/channels subscribers
    await clients.reset()
    start = time.perf_counter()
    deadline = start + limit_s
    for seq in range(batches):
        if window is not None:
            await _wait_received(clients, (seq + 1) * per_batch - window, deadline)
        if rate is not None:
            due = start + seq * per_batch / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
        await publish(seq)
    await _wait_received(clients, batches * per_batch, deadline)
    seconds = time.perf_counter() - start
    return Phase(clients.received, seconds, await clients.latencies())


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


async def _measure(
    args: argparse.Namespace, target: str, port: int, token: str, server_pid: int
) -> list[dict]:
    if target == "hub":
        url = f"ws://127.0.0.1:{port}/realtime/v1/websocket?apikey={token}&vsn=1.0.0"
    else:
        url = f"ws://127.0.0.1:{port}/"
    clients = ClientPool(args, url, token)
    await clients.open()
    results = []
    async with aiohttp.ClientSession() as session:
        control = None if target == "hub" else await websockets.connect(url, compression=None)

        posts: list[asyncio.Task[None]] = []

        async def publish(seq: int) -> None:
            sent = time.perf_counter()
            if control is not None:
                await control.send(f"batch {seq} {sent!r}")
                return
            # Like the ceiling's control frame, a batch is sent without waiting for the previous
            # one's answer: only the window bounds what is outstanding.
            posts.append(asyncio.create_task(post(seq, sent)))

        async def post(seq: int, sent: float) -> None:
            messages = [
                {
                    "topic": f"bench:{c}",
                    "event": "m",
                    "private": True,
                    "payload": {"t": sent, "seq": seq, "pad": PAD},
                }
                for c in range(args.channels)
            ]
            async with session.post(
                f"http://127.0.0.1:{port}/realtime/v1/api/broadcast",
                json={"messages": messages},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                assert resp.status == 202, await resp.text()

        for _ in range(args.reps):
            cpu = _cpu_s(server_pid)
            tp = await _phase(
                clients, publish, args.batches, window=args.window, rate=None, limit_s=args.timeout
            )
            cpu_us = (_cpu_s(server_pid) - cpu) / tp.deliveries * 1e6
            paced_batches = max(1, int(args.paced_seconds * args.paced_rate / args.clients))
            lat = await _phase(
                clients,
                publish,
                paced_batches,
                window=None,
                rate=args.paced_rate,
                limit_s=args.timeout,
            )
            await asyncio.gather(*posts)  # every answer was a 202
            posts.clear()
            results.append(
                {
                    "frames_per_s": tp.rate,
                    "cpu_us": cpu_us,
                    "tp_p50": tp.pct(0.5),
                    "tp_p99": tp.pct(0.99),
                    "paced_p50": lat.pct(0.5),
                    "paced_p99": lat.pct(0.99),
                    "paced_rate": lat.rate,
                }
            )
        if control is not None:
            await control.close()
    clients.close()
    return results


def _fmt(values: list[float], digits: int = 0) -> str:
    ordered = sorted(values)
    return " / ".join(
        f"{v:,.{digits}f}" for v in (ordered[0], statistics.median(ordered), ordered[-1])
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--batches", type=int, default=200, help="throughput batches per rep")
    parser.add_argument("--window", type=int, default=20_000, help="max outstanding deliveries")
    parser.add_argument("--paced-rate", type=float, default=20_000, help="deliveries/s")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--client-procs", type=int, default=2, help="processes the client connections share"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase")
    args = parser.parse_args()

    from daemon.localpg import LocalPostgres, configured_dsn
    from daemon.log import configure_logging
    from daemon.tokens import mint_token, new_jwt_secret

    configure_logging(level="warning")  # stdout carries the result table only

    async def migrate_db(dsn: str) -> None:
        import asyncpg

        from daemon.migrate import migrate

        conn = await asyncpg.connect(dsn or None)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    configured = configured_dsn()
    local = None if configured is not None else LocalPostgres()
    dsn = configured if configured is not None else local.start()  # type: ignore[union-attr]
    try:
        asyncio.run(migrate_db(dsn))
        secret = new_jwt_secret()
        token = mint_token(secret, role="service_role", ttl_s=3600)
        ctx = mp.get_context("spawn")
        table = {}
        for target in ("ceiling", "hub"):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_run_hub if target == "hub" else _run_ceiling,
                args=(child, dsn, secret) if target == "hub" else (child, args.channels),
            )
            proc.start()
            port = parent.recv()
            try:
                table[target] = asyncio.run(_measure(args, target, port, token, proc.pid))
            finally:
                parent.send("stop")
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
    finally:
        if local is not None:
            local.stop()

    print(
        f"clients={args.clients} channels={args.channels} batches={args.batches} "
        f"window={args.window} paced_rate={args.paced_rate:g}/s reps={args.reps} "
        f"client_procs={args.client_procs}"
    )
    print(
        "| target | frames/s delivered | server CPU µs/delivery | p50 ms (throughput) "
        "| p99 ms (throughput) | p50 ms (paced) | p99 ms (paced) |"
    )
    print("|---|---|---|---|---|---|---|")
    for target, runs in table.items():
        print(
            f"| {target} | {_fmt([r['frames_per_s'] for r in runs])} "
            f"| {_fmt([r['cpu_us'] for r in runs], 1)} "
            f"| {_fmt([r['tp_p50'] for r in runs], 1)} | {_fmt([r['tp_p99'] for r in runs], 1)} "
            f"| {_fmt([r['paced_p50'] for r in runs], 1)} "
            f"| {_fmt([r['paced_p99'] for r in runs], 1)} |"
        )
    ratio = statistics.median(r["frames_per_s"] for r in table["hub"]) / statistics.median(
        r["frames_per_s"] for r in table["ceiling"]
    )
    print(f"hub / ceiling (median frames/s): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
