"""Websocket connections: the upgrade (with Realtime's refusals), the read loop, and dispatch.

Frames are processed in order, one at a time, like a Phoenix socket process. Outbound frames are
written straight to the transport (complete frames, no compression, so they never interleave);
a client whose unsent output passes `hub.max_socket_buffer_kb` is disconnected, never buffered
without bound.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from daemon.hub.auth import Claims, TokenRejected
from daemon.hub.channel import PREFIX, Channel, JoinConfig, JoinRefused
from daemon.hub.serializers import (
    FrameError,
    Inbound,
    Serializer,
    UnservedFrame,
    serializer_for,
)
from daemon.hub.state import HUB_STATE, HubState
from daemon.log import get_logger

log = get_logger(__name__)

MAX_FRAME_BYTES = 5_000_000
_ids = itertools.count(1)
_UNSUPPORTED_PRESENCE = (
    "UnsupportedFeature: presence is not supported by the local hub (broadcast only)"
)
_UNSUPPORTED_CHANGES = (
    "UnsupportedFeature: postgres_changes is not supported by the local hub (broadcast only)"
)


def _refuse(state: HubState, status: int, error: str) -> web.Response:
    state.metrics.refused_sockets.labels(str(status)).inc()
    log.info("hub.socket.refused", status=status, error=error)
    return web.json_response({"error": error}, status=status)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    state = request.app[HUB_STATE]
    serializer = serializer_for(request.query.get("vsn"))
    if serializer is None:
        # Phoenix's transport answers a vsn it cannot negotiate before any authentication, with
        # a bare 403 (no body); the error handler that writes `{"error": ...}` is not involved.
        state.metrics.refused_sockets.labels("403").inc()
        log.info(
            "hub.socket.refused", status=403, error="unsupported vsn", vsn=request.query["vsn"]
        )
        return web.Response(status=403)
    token = request.headers.get("x-api-key") or request.query.get("apikey")
    backoff = state.settings.connect_error_backoff_ms / 1000
    try:
        claims = state.tokens.verify(token)
    except TokenRejected as exc:
        await asyncio.sleep(backoff)
        status, error = exc.connect_error
        return _refuse(state, status, error)
    if state.limits.too_many_users(state.users()):
        await asyncio.sleep(backoff)
        return _refuse(state, 429, "Too many connected users")
    if state.limits.joins_tripped():
        await asyncio.sleep(backoff)
        return _refuse(state, 429, "Too many joins per second")
    ws = web.WebSocketResponse(
        compress=False, max_msg_size=MAX_FRAME_BYTES, autoping=True, heartbeat=None
    )
    if not ws.can_prepare(request).ok:
        return web.json_response({"error": "Expected a websocket upgrade"}, status=400)
    await ws.prepare(request)
    headers = {
        k.lower(): v
        for k, v in request.headers.items()
        if k.lower().startswith("x-") and k.lower() != "x-api-key"
    }
    conn = Connection(state, ws, request, serializer, claims, headers)
    await conn.run()
    return ws


class Connection:
    def __init__(
        self,
        state: HubState,
        ws: web.WebSocketResponse,
        request: web.Request,
        serializer: Serializer,
        claims: Claims,
        headers: dict[str, str],
    ) -> None:
        self.id = next(_ids)
        self.state = state
        self.ws = ws
        transport = request.transport
        assert transport is not None, "prepared websocket without a transport"
        self.transport = transport
        self.serializer = serializer
        self.claims = claims
        self.headers = headers
        self.peer = request.remote
        self.channels: dict[str, Channel] = {}
        self._max_buffer = state.settings.max_socket_buffer_kb * 1024
        self._close_code: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- writing ---------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        held = self.state.held
        if held is None:
            self.write(frame)
        elif (queued := held.get(self)) is None:
            held[self] = frame  # bytes, not a list: no GC-tracked object per socket and batch
        elif isinstance(queued, list):
            queued.append(frame)
        else:
            held[self] = [queued, frame]

    def write(self, data: bytes) -> None:
        """Straight to the transport; a socket whose unsent output passes the limit is cut."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self._max_buffer:
            self.state.metrics.slow_consumers.inc()
            log.warning(
                "hub.socket.slow_consumer",
                socket=self.id,
                buffered=transport.get_write_buffer_size(),
                limit=self._max_buffer,
            )
            self._close_code = WSCloseCode.POLICY_VIOLATION
            transport.abort()

    def close_soon(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Start the close handshake without waiting for it (we may be inside the read loop)."""
        self._close_code = code
        task = asyncio.get_running_loop().create_task(self._close(code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, code: int) -> None:
        try:
            await self.ws.close(code=code)
        except (ConnectionError, RuntimeError):
            self.transport.abort()

    async def close(self, code: int, message: bytes = b"") -> None:
        """Close from the hub's side; the disconnect log then names this code, not the echo."""
        self._close_code = code
        await self.ws.close(code=code, message=message)

    # -- reading ---------------------------------------------------------------------------
    async def run(self) -> None:
        state = self.state
        state.connections.add(self)
        state.metrics.sockets.inc()
        started = time.monotonic()
        log.info(
            "hub.socket.connected",
            socket=self.id,
            vsn=self.serializer.vsn,
            role=self.claims.role,
            peer=self.peer,
        )
        idle = state.settings.idle_timeout_s
        try:
            while not self.ws.closed:
                try:
                    msg = await self.ws.receive(timeout=idle)
                except TimeoutError:
                    log.info("hub.socket.idle_timeout", socket=self.id, idle_timeout_s=idle)
                    await self.close(WSCloseCode.OK)
                    break
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._dispatch(msg.data)
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                elif msg.type == WSMsgType.ERROR:
                    log.info("hub.socket.error", socket=self.id, error=str(self.ws.exception()))
                    break
        finally:
            joined = len(self.channels)
            for channel in list(self.channels.values()):
                self.drop_channel(channel)
            state.connections.discard(self)
            state.metrics.sockets.dec()
            # The code of whoever closed first: when the hub did, ws.close_code is only the
            # client's echo of it (aiohttp's clients echo 1000 whatever the hub sent).
            by_hub = self._close_code is not None
            log.info(
                "hub.socket.disconnected",
                socket=self.id,
                code=self._close_code if by_hub else self.ws.close_code,
                closed_by="hub" if by_hub else "client",
                channels=joined,
                seconds=round(time.monotonic() - started, 3),
            )

    async def _dispatch(self, data: str | bytes) -> None:
        try:
            msg = self.serializer.decode(data)
        except FrameError as exc:
            # Phoenix's decode! raises, the socket process dies and Cowboy closes with 1011.
            log.warning("hub.socket.bad_frame", socket=self.id, error=str(exc))
            await self.close(WSCloseCode.INTERNAL_ERROR)
            return
        except UnservedFrame as exc:
            log.info("hub.socket.ignored_frame", socket=self.id, reason=str(exc))
            return
        if msg.topic == "phoenix":
            if msg.event == "heartbeat":
                self.send(self.serializer.reply(None, msg.ref, "phoenix", "ok", {}))
            return
        if msg.event == "phx_join":
            await self._join(msg)
            return
        channel = self.channels.get(msg.topic)
        if channel is None:
            if msg.event == "phx_leave":  # Phoenix: leaving what is not joined is done already
                self._reply(msg, "ok", {})
            else:
                self._unmatched(msg)
            return
        match msg.event:
            case "phx_leave":
                if msg.join_ref is not None and msg.join_ref != channel.join_ref:
                    return  # a leave of an earlier join raced a rejoin: Phoenix ignores it
                self._reply(msg, "ok", {})
                self.send(self.serializer.close(channel.join_ref, channel.topic, "phx_close"))
                self.drop_channel(channel)
            case "broadcast":
                await channel.on_broadcast(msg.payload, msg.ref)
            case "access_token":
                token = msg.payload.get("access_token") if isinstance(msg.payload, dict) else None
                await channel.on_access_token(token)
            case "presence":
                self._reply(msg, "error", {"reason": _UNSUPPORTED_PRESENCE})
            case _:
                self.state.limits.events.add(1)  # Realtime counts, and otherwise ignores, these

    def _reply(self, msg: Inbound, status: str, response: Any) -> None:
        self.send(self.serializer.reply(msg.join_ref, msg.ref, msg.topic, status, response))

    def _unmatched(self, msg: Inbound) -> None:
        """Phoenix's answer to a message for no channel: an error reply without a join_ref."""
        reply = self.serializer.reply(
            None, msg.ref, msg.topic, "error", {"reason": "unmatched topic"}
        )
        self.send(reply)

    # -- channels --------------------------------------------------------------------------
    def drop_channel(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
            self.state.metrics.channels.dec()
        channel.leave()

    async def _join(self, msg: Inbound) -> None:
        state = self.state
        config = JoinConfig.parse(msg.payload)
        name = msg.topic[len(PREFIX) :] if msg.topic.startswith(PREFIX) else None
        if name is None:
            self._unmatched(msg)
            return
        previous = self.channels.get(msg.topic)
        if previous is not None:  # Phoenix closes the existing channel for the new join
            self.send(self.serializer.close(previous.join_ref, previous.topic, "phx_close"))
            self.drop_channel(previous)
        try:
            channel = await self._admit(msg, name, config)
        except JoinRefused as refused:
            await asyncio.sleep(state.settings.join_error_backoff_ms / 1000)
            state.metrics.denied_joins.labels(refused.code).inc()
            log.info(
                "hub.channel.join_denied",
                socket=self.id,
                topic=name,
                private=config.private,
                reason=refused.reason,
            )
            self._reply(msg, "error", {"reason": refused.reason})
            if refused.disconnect:
                self.close_soon(WSCloseCode.GOING_AWAY)
            return
        self.channels[msg.topic] = channel
        channel.start()
        state.metrics.channels.inc()
        state.metrics.joins.inc()
        log.info(
            "hub.channel.joined",
            socket=self.id,
            topic=name,
            private=config.private,
            role=channel.claims.role,
        )
        self._reply(msg, "ok", {"postgres_changes": []})

    async def _admit(self, msg: Inbound, name: str, config: JoinConfig) -> Channel:
        """Realtime's join order: limits, token, then the RLS read check for private channels."""
        state = self.state
        if not name:
            raise JoinRefused("TopicNameRequired: You must provide a topic name")
        if not self.channels and state.limits.too_many_users(state.users()):
            raise JoinRefused("ConnectionRateLimitReached: Too many connected users")
        if state.limits.joins_tripped():
            raise JoinRefused(
                "ClientJoinRateLimitReached: Too many joins per second", disconnect=True
            )
        state.limits.joins.add(1)
        if len(self.channels) >= state.settings.max_channels_per_socket:
            raise JoinRefused("ChannelRateLimitReached: Too many channels")
        token = config.access_token
        if token is None or token.startswith("sb_"):
            token = self.claims.token
        try:
            claims = state.tokens.verify(token)
        except TokenRejected as exc:
            raise JoinRefused(exc.join_reason) from None
        if config.presence:
            raise JoinRefused(_UNSUPPORTED_PRESENCE)
        if config.postgres_changes:
            raise JoinRefused(_UNSUPPORTED_CHANGES)
        channel = Channel(self, msg.topic, msg.join_ref, config, claims)
        await channel.authorize_read()
        return channel
