"""The load of the pipeline benchmarks, in worker processes of their own.

Writers: asyncpg connections inserting one submission per autocommit transaction, either paced
(a global schedule of `rate` inserts/s interleaved over every connection) or flat out; each
records the wall-clock time (`time.time()`) at which its commit returned.
Subscribers: one client per channel, joined to the private channel with its teacher's token;
they record when each cell (and each message) arrived, on the same clock. The client is a lean
Phoenix one by default (websockets + json: what a browser's supabase-js does per message) or
realtime-py (`--subscriber realtime-py`). realtime-py spends ~300 us of CPU per message on this
machine (pydantic validation, and a debug log line formatted for every message even when debug is
off), which the benchmark's one machine takes from the writers and the pipeline; a teacher's
browser spends it on the teacher's laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.synchronize
import os
import queue as queue_module
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import asyncpg

from bench.common import SubscriberClient, sql

BODY = '{"text": "bench answer"}'
_CTX = multiprocessing.get_context("spawn")
_JOIN_TIMEOUT_S = 20.0

Key = tuple[str, str]  # (activity_id, pupil uuid)


# ------------------------------------------------------------------------------------ writers


@dataclass(frozen=True)
class WriterSpec:
    dsn: str
    keys: tuple[tuple[Key, ...], ...]  # one list per connection of this process
    slots: tuple[int, ...]  # each connection's index in the global schedule
    total_connections: int
    rate: float | None  # inserts/s over all connections and processes; None = flat out
    start_at: float  # time.time() at which every process starts
    duration_s: float


@dataclass
class WriterResult:
    commits: list[tuple[str, str, float]] = field(default_factory=list)  # activity, pupil, t
    started: float = 0.0
    finished: float = 0.0
    max_lateness_s: float = 0.0  # paced: how far behind its schedule an insert was sent
    errors: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        span = self.finished - self.started
        return len(self.commits) / span if span > 0 else 0.0


def writer_main(spec: WriterSpec, out: Any) -> None:
    out.put(asyncio.run(_write(spec)))


async def _write(spec: WriterSpec) -> WriterResult:
    result = WriterResult(pids=[os.getpid()])
    conns = [await asyncpg.connect(spec.dsn) for _ in spec.keys]
    try:
        statements = [await c.prepare(sql("insert_submission")) for c in conns]
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        result.started = time.time()
        end = spec.start_at + spec.duration_s
        await asyncio.gather(
            *(
                _connection_loop(spec, statement, keys, slot, end, result)
                for statement, keys, slot in zip(statements, spec.keys, spec.slots, strict=True)
            )
        )
        result.finished = max((t for *_, t in result.commits), default=time.time())
    finally:
        for c in conns:
            await c.close()
    return result


async def _connection_loop(
    spec: WriterSpec,
    statement: asyncpg.prepared_stmt.PreparedStatement[Any],
    keys: Sequence[Key],
    slot: int,
    end: float,
    result: WriterResult,
) -> None:
    for k, (activity, pupil) in enumerate(keys):
        if spec.rate is not None:
            due = spec.start_at + (k * spec.total_connections + slot) / spec.rate
            if due >= end:
                return
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                result.max_lateness_s = max(result.max_lateness_s, -wait)
        elif time.time() >= end:
            return
        try:
            await statement.fetch(activity, pupil, BODY)
        except asyncpg.PostgresError as exc:
            result.errors.append(repr(exc))
            continue
        result.commits.append((activity, pupil, time.time()))


async def run_writers(
    dsn: str,
    keys: Sequence[Key],
    *,
    connections: int,
    processes: int,
    rate: float | None,
    duration_s: float,
) -> WriterResult:
    """Spread `connections` over `processes` worker processes; merge their results."""
    processes = max(1, min(processes, connections))
    per_connection = [tuple(keys[j::connections]) for j in range(connections)]
    start_at = time.time() + 1.0 + 0.3 * processes  # time for the children to start
    outs = []
    procs = []
    for p in range(processes):
        slots = tuple(range(p, connections, processes))
        spec = WriterSpec(
            dsn=dsn,
            keys=tuple(per_connection[j] for j in slots),
            slots=slots,
            total_connections=connections,
            rate=rate,
            start_at=start_at,
            duration_s=duration_s,
        )
        out = _CTX.Queue()
        proc = _CTX.Process(target=writer_main, args=(spec, out), name=f"writer-{p}")
        proc.start()
        outs.append(out)
        procs.append(proc)
    merged = WriterResult(started=start_at)
    try:
        for out, proc in zip(outs, procs, strict=True):
            part: WriterResult = await _get(out, proc, spec_deadline=duration_s + 60)
            merged.commits.extend(part.commits)
            merged.errors.extend(part.errors)
            merged.pids.extend(part.pids)
            merged.max_lateness_s = max(merged.max_lateness_s, part.max_lateness_s)
    finally:
        for proc in procs:
            proc.join(_JOIN_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
    merged.finished = max((t for *_, t in merged.commits), default=start_at)
    return merged


async def _get(out: Any, proc: multiprocessing.process.BaseProcess, *, spec_deadline: float) -> Any:
    deadline = time.monotonic() + spec_deadline
    while True:
        try:
            return await asyncio.to_thread(out.get, True, 0.5)
        except queue_module.Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"{proc.name} exited ({proc.exitcode}) without a result"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{proc.name} gave no result within {spec_deadline}s") from None


# -------------------------------------------------------------------------------- subscribers

Mode = Literal["keys", "ai_score"]
_HEARTBEAT_S = 25.0  # as realtime-js and realtime-py


@dataclass(frozen=True)
class SubscriberSpec:
    realtime_url: str
    channels: tuple[tuple[str, str], ...]  # (channel name, teacher token)
    mode: Mode  # "keys": a cell counts when it first arrives; "ai_score": when it has ai_score
    ai_score: float | None = None
    client: SubscriberClient = "phoenix"


@dataclass
class SubscriberResult:
    cells: dict[Key, float] = field(default_factory=dict)  # first arrival in the final state
    messages: list[tuple[float, str, str, int]] = field(default_factory=list)  # t, ch, event, seq
    cell_deliveries: int = 0  # cells received, duplicates included
    refreshes: int = 0
    seq_gaps: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    pid: int = 0


class _Recorder:
    def __init__(self, spec: SubscriberSpec, progress: Any) -> None:
        self.spec = spec
        self.progress = progress
        self.result = SubscriberResult(pid=os.getpid())
        self.last_seq: dict[str, int] = {}

    def callback(self, channel: str) -> Any:
        def on_broadcast(frame: dict[str, Any]) -> None:
            t = time.time()
            try:
                self._record(channel, frame, t)
            except Exception as exc:  # a malformed frame must not stop the recording
                self.result.errors.append(repr(exc))

        return on_broadcast

    def _record(self, channel: str, frame: dict[str, Any], t: float) -> None:
        event = frame.get("event", "")
        payload = frame.get("payload") or {}
        seq = int(payload.get("seq") or 0)
        r = self.result
        r.messages.append((t, channel, event, seq))
        last = self.last_seq.get(channel)
        if last is not None and seq <= last:
            r.duplicates += 1
            return
        if last is not None and payload.get("prevSeq") != last:
            r.seq_gaps += 1
        self.last_seq[channel] = seq
        if event == "result_cell":
            cells = [payload]
        elif event == "result_cells":
            cells = payload.get("cells", [])
        else:
            r.refreshes += 1
            return
        for cell in cells:
            r.cell_deliveries += 1
            key = (cell["activityId"], cell["pupilId"])
            if key in r.cells:
                continue
            if self.spec.mode == "ai_score" and cell.get("aiScore") != self.spec.ai_score:
                continue
            r.cells[key] = t
        self.progress.value = len(r.cells)


def subscriber_main(
    spec: SubscriberSpec,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    progress: Any,
    out: Any,
) -> None:
    out.put(asyncio.run(_subscribe(spec, ready, stop, progress)))


async def _subscribe(
    spec: SubscriberSpec,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    progress: Any,
) -> SubscriberResult:
    recorder = _Recorder(spec, progress)
    if spec.client == "phoenix":
        await _subscribe_phoenix(spec, recorder, ready, stop)
    else:
        await _subscribe_realtime_py(spec, recorder, ready, stop)
    return recorder.result


async def _subscribe_phoenix(
    spec: SubscriberSpec,
    recorder: _Recorder,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    """Phoenix vsn 1.0.0 over plain websockets: join, heartbeat, hand each broadcast over."""
    import websockets

    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []
    config = {"broadcast": {"ack": False, "self": False}, "private": True}
    base = "ws" + spec.realtime_url.removeprefix("http")  # http(s):// -> ws(s)://
    try:
        for channel_name, token in spec.channels:
            url = f"{base}/websocket?{urlencode({'apikey': token, 'vsn': '1.0.0'})}"
            ws = await websockets.connect(url, compression=None, max_queue=None, ping_interval=None)
            sockets.append(ws)
            topic = f"realtime:{channel_name}"
            join = {"config": config, "access_token": token}
            await ws.send(_frame(topic, "phx_join", join, ref="1"))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if reply.get("event") != "phx_reply" or reply["payload"].get("status") != "ok":
                raise RuntimeError(f"join of {channel_name} refused: {reply}")
            readers.append(asyncio.create_task(_read_phoenix(ws, recorder, channel_name)))
        readers.append(asyncio.create_task(_heartbeats(sockets)))
        gc.collect()  # as in _subscribe_realtime_py
        gc.freeze()
        ready.set()
        await asyncio.to_thread(stop.wait)
    except Exception as exc:
        recorder.result.errors.append(repr(exc))
        ready.set()
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def _frame(topic: str, event: str, payload: dict[str, Any], *, ref: str) -> str:
    return json.dumps(
        {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": "1"}
    )


async def _read_phoenix(ws: Any, recorder: _Recorder, channel_name: str) -> None:
    on_broadcast = recorder.callback(channel_name)
    try:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("event") == "broadcast":
                on_broadcast(message["payload"])  # {"type": "broadcast", "event", "payload"}
            elif message.get("event") in ("phx_error", "phx_close"):
                recorder.result.errors.append(f"{channel_name}: {message}")
    except Exception as exc:  # the socket closed under us: the run is not complete
        recorder.result.errors.append(f"{channel_name}: {exc!r}")


async def _heartbeats(sockets: Sequence[Any]) -> None:
    for ref in itertools.count(2):
        await asyncio.sleep(_HEARTBEAT_S)
        for ws in sockets:
            await ws.send(_frame("phoenix", "heartbeat", {}, ref=str(ref)))


async def _subscribe_realtime_py(
    spec: SubscriberSpec,
    recorder: _Recorder,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
) -> None:
    from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

    clients = []
    config: Any = {"config": {"broadcast": {"ack": False, "self": False}, "private": True}}
    try:
        for channel_name, token in spec.channels:
            client = AsyncRealtimeClient(spec.realtime_url, token=token, max_retries=1)
            await client.connect()
            clients.append(client)
            channel = client.channel(channel_name, config)
            channel.on_broadcast("*", recorder.callback(channel_name))
            joined: asyncio.Future[RealtimeSubscribeStates] = (
                asyncio.get_running_loop().create_future()
            )

            def on_state(
                state: RealtimeSubscribeStates,
                error: Exception | None,
                joined: asyncio.Future[RealtimeSubscribeStates] = joined,
            ) -> None:
                if not joined.done():
                    joined.set_result(state)

            await channel.subscribe(on_state)
            state = await asyncio.wait_for(joined, 10)
            if state != RealtimeSubscribeStates.SUBSCRIBED:
                raise RuntimeError(f"join of {channel_name} ended in {state}")
        gc.collect()  # as the daemon and the hub do: the measuring process's start-up heap
        gc.freeze()  # is left out of full collections, whose pauses would count as latency
        ready.set()
        await asyncio.to_thread(stop.wait)  # the orchestrator decides when to stop
    except Exception as exc:
        recorder.result.errors.append(repr(exc))
        ready.set()
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


class Subscribers:
    """A subscriber process: `await start()`, then `await wait_for(n)`, then `await finish()`."""

    def __init__(self, spec: SubscriberSpec) -> None:
        self._ready = _CTX.Event()
        self._stop = _CTX.Event()
        self.progress = _CTX.Value("q", 0)
        self._out: Any = _CTX.Queue()
        self._proc = _CTX.Process(
            target=subscriber_main,
            args=(spec, self._ready, self._stop, self.progress, self._out),
            name="subscribers",
        )

    async def start(self) -> None:
        self._proc.start()
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(self._ready.wait, 0.2):
            if not self._proc.is_alive():
                raise RuntimeError(f"the subscriber process died ({self._proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError("the subscribers did not join within 60 s")

    async def wait_for(self, count: int, deadline_s: float) -> bool:
        """True once `count` cells reached their final state, False at the deadline."""
        deadline = time.monotonic() + deadline_s
        while self.progress.value < count:
            if time.monotonic() > deadline or not self._proc.is_alive():
                return False
            await asyncio.sleep(0.01)
        return True

    async def finish(self) -> SubscriberResult:
        self._stop.set()
        try:
            result: SubscriberResult = await _get(self._out, self._proc, spec_deadline=60)
        finally:
            self._proc.join(_JOIN_TIMEOUT_S)
            if self._proc.is_alive():
                self._proc.kill()
        if result.errors:
            raise RuntimeError(f"subscriber errors: {result.errors[:5]}")
        return result
