"""A small HTTP server that speaks Realtime's REST batch broadcast and records what it accepted.

It answers like Supabase (202 empty body; 401 {"message":"Unauthorized"}; 422 with errors), and
can be scripted: the next N requests answer a status or never answer (the client times out), and
messages matching a predicate are rejected with 422. Tests await conditions on what arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

BROADCAST_PATHS = ("/realtime/v1/api/broadcast", "/api/broadcast")

Fault = int | Literal["timeout"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived (accepted or not)."""

    status: int | Literal["timeout"]
    headers: dict[str, str]
    body: Any


@dataclass
class CaptureServer:
    token: str | None = None  # when set, the bearer token must equal it
    requests: list[Received] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # messages, in arrival order
    reject_when: Callable[[dict[str, Any]], bool] | None = None
    _faults: list[Fault] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        app = web.Application()
        for path in BROADCAST_PATHS:
            app.router.add_post(path, self._broadcast)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, count: int, fault: Fault) -> None:
        """The next `count` requests answer `fault` (a status code, or "timeout": no answer)."""
        self._faults.extend([fault] * count)

    def heal(self) -> None:
        """Forget the faults still queued: the next request is answered normally."""
        self._faults.clear()

    @property
    def faults_left(self) -> int:
        return len(self._faults)

    def received(self) -> list[tuple[str, int]]:
        return [(m["topic"], seq_of(m)) for m in self.accepted]

    def by_channel(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for message in self.accepted:
            out.setdefault(message["topic"], []).append(message)
        return out

    async def wait_until(
        self, predicate: Callable[[CaptureServer], bool], *, deadline_s: float = 10.0
    ) -> None:
        """Wait for a condition on the recorded traffic; fail with what did arrive."""
        try:
            async with asyncio.timeout(deadline_s), self._changed:
                await self._changed.wait_for(lambda: predicate(self))
        except TimeoutError:
            raise AssertionError(
                f"condition not met within {deadline_s}s; accepted so far: {self.received()}; "
                f"requests: {[r.status for r in self.requests]}"
            ) from None

    async def wait_for_message(self, channel: str, seq: int, *, deadline_s: float = 10.0) -> None:
        await self.wait_until(lambda s: (channel, seq) in s.received(), deadline_s=deadline_s)

    async def wait_for_requests(self, count: int, *, deadline_s: float = 10.0) -> None:
        await self.wait_until(lambda s: len(s.requests) >= count, deadline_s=deadline_s)

    async def _record(self, received: Received, messages: list[dict[str, Any]]) -> None:
        async with self._changed:
            self.requests.append(received)
            self.accepted.extend(messages)
            self._changed.notify_all()

    async def _broadcast(self, request: web.Request) -> web.StreamResponse:
        headers = dict(request.headers)
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            await self._record(Received(401, headers, body), [])
            return web.json_response({"message": "Unauthorized"}, status=401)
        if self._faults:
            fault = self._faults.pop(0)
            await self._record(Received(fault, headers, body), [])
            if fault == "timeout":
                await self._release.wait()  # never answered while the test runs
                return web.Response(status=504)
            return web.json_response({"message": f"scripted {fault}"}, status=fault)
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            await self._record(Received(422, headers, body), [])
            return web.json_response({"errors": {"messages": ["can't be blank"]}}, status=422)
        if self.reject_when is not None and any(self.reject_when(m) for m in messages):
            await self._record(Received(422, headers, body), [])
            errors = [{"payload": ["rejected"]} if self.reject_when(m) else {} for m in messages]
            return web.json_response({"errors": {"messages": errors}}, status=422)
        await self._record(Received(202, headers, body), messages)
        return web.Response(status=202)


def seq_of(message: dict[str, Any]) -> int:
    seq = message["payload"]["seq"]
    assert isinstance(seq, int)
    return seq
