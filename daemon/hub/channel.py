"""One joined channel on one socket: join checks, client broadcasts, token refresh and expiry.

Replies and reasons follow Supabase Realtime's `RealtimeChannel` word for word where the clients
(or people) read them; features the hub does not serve are refused with an explicit reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from daemon.hub.auth import AuthContext, Claims, PolicyCheckFailed, TokenRejected
from daemon.hub.channels import JsonBroadcast, StreamKey, UserBroadcast
from daemon.hub.serializers import Serializer, UserPayload, dumps
from daemon.log import get_logger

if TYPE_CHECKING:
    from daemon.hub.socket import Connection

log = get_logger(__name__)

PREFIX = "realtime:"
DB_UNAVAILABLE = "Realtime was unable to connect to the project database"


class JoinRefused(Exception):
    """A join error: `reason` goes to the client as `{"reason": ...}`; `code` to logs/metrics."""

    def __init__(self, reason: str, *, disconnect: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = reason.split(":", 1)[0] if ":" in reason else reason
        self.disconnect = disconnect


def _flag(value: Any, default: bool = False) -> bool:
    """Realtime's FlexibleBoolean: true/false or "true"/"false"; anything else is the default."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


@dataclass(frozen=True, slots=True)
class JoinConfig:
    private: bool
    ack: bool
    self_broadcast: bool
    presence: bool
    postgres_changes: bool
    access_token: str | None

    @classmethod
    def parse(cls, payload: Any) -> JoinConfig:
        """Invalid parts fall back to defaults, as in Realtime (it only logs InvalidJoinPayload)."""
        payload = payload if isinstance(payload, dict) else {}
        config = payload.get("config")
        config = config if isinstance(config, dict) else {}
        broadcast = config.get("broadcast")
        broadcast = broadcast if isinstance(broadcast, dict) else {}
        presence = config.get("presence")
        presence = presence if isinstance(presence, dict) else {}
        changes = config.get("postgres_changes")
        token = payload.get("access_token") or payload.get("user_token")
        return cls(
            private=_flag(config.get("private")),
            ack=_flag(broadcast.get("ack")),
            self_broadcast=_flag(broadcast.get("self")),
            presence=_flag(presence.get("enabled")),
            postgres_changes=isinstance(changes, list) and any(c for c in changes),
            access_token=token if isinstance(token, str) else None,
        )


class Channel:
    """Implements the Subscriber protocol of the registry."""

    def __init__(
        self, conn: Connection, topic: str, join_ref: str | None, config: JoinConfig, claims: Claims
    ) -> None:
        self.conn = conn
        self.serializer: Serializer = conn.serializer
        self.topic = topic
        self.name = topic[len(PREFIX) :]
        self.join_ref = join_ref
        self.config = config
        self.claims = claims
        self.key: StreamKey = (config.private, self.name)
        self.can_write: bool | None = None  # cached write policy, reset by a new access_token
        self._expiry: asyncio.TimerHandle | None = None
        self.closed = False
        # The registry's side: a frame goes straight to the socket (one call less per delivery).
        self.deliver: Callable[[bytes], None] = conn.send

    # -- the registry's side -------------------------------------------------------------

    def shutdown(self, message: str) -> None:
        """`system` error then `phx_close`, and the channel is gone (realtime-py: CLOSED)."""
        if self.closed:
            return
        self.conn.send(
            self.serializer.push(
                self.join_ref,
                self.topic,
                "system",
                {
                    "channel": self.name,
                    "extension": "system",
                    "message": message,
                    "status": "error",
                },
            )
        )
        self.conn.send(self.serializer.close(self.join_ref, self.topic, "phx_close"))
        log.info("hub.channel.closed", socket=self.conn.id, topic=self.name, reason=message)
        self.conn.drop_channel(self)

    def leave(self) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        self.conn.state.registry.unsubscribe(self.key, self)

    # -- joining -------------------------------------------------------------------------
    def auth_context(self) -> AuthContext:
        return AuthContext(self.name, self.claims, self.conn.headers)

    async def authorize_read(self) -> None:
        if not self.config.private:
            return
        try:
            allowed = await self.conn.state.authorizer.can_read(self.auth_context())
        except PolicyCheckFailed as exc:
            log.warning("hub.channel.policy_error", topic=self.name, kind=exc.kind, error=str(exc))
            if exc.kind == "unavailable":
                raise JoinRefused(f"UnableToConnectToProject: {DB_UNAVAILABLE}") from None
            allowed = False
        if not allowed:
            raise JoinRefused(
                "Unauthorized: You do not have permissions to read from this Channel topic: "
                f"{self.name}"
            )

    def start(self) -> None:
        self.conn.state.registry.subscribe(self.key, self)
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(self.claims.exp - time.time(), 0.0)
        self._expiry = asyncio.get_running_loop().call_later(delay, self._check_expiry)

    def _check_expiry(self) -> None:
        if self.closed:
            return
        now = int(time.time())
        exp = round(self.claims.exp)
        if exp > now:
            self._schedule_expiry()
            return
        self.shutdown(f"Token has expired {now - exp} seconds ago")

    # -- client events -------------------------------------------------------------------
    async def on_access_token(self, token: Any) -> None:
        """No reply, ever; a bad token or lost permission shuts the channel down."""
        if not isinstance(token, str) or token.startswith("sb_") or token == self.claims.token:
            return
        try:
            claims = self.conn.state.tokens.verify(token)
        except TokenRejected as exc:
            self.shutdown(exc.refresh_message)
            return
        previous = self.claims
        self.claims, self.can_write = claims, None
        if self.config.private:
            try:
                allowed = await self.conn.state.authorizer.can_read(self.auth_context())
            except PolicyCheckFailed as exc:
                self.claims = previous
                if exc.kind == "unavailable":
                    self.shutdown(DB_UNAVAILABLE)
                    return
                allowed = False
            if not allowed:
                # Realtime's words when read is refused on a refresh (broadcast is all the hub
                # serves, so "You no longer have permission" - one of two kept - never applies).
                self.shutdown(
                    f"You do not have permissions to read from this Channel topic: {self.name}"
                )
                return
        if not self.closed:
            self._schedule_expiry()

    async def on_broadcast(self, payload: Any, ref: str | None) -> None:
        state = self.conn.state
        if self.config.private:
            if self.can_write is None:
                try:
                    self.can_write = await state.authorizer.can_write(self.auth_context())
                except PolicyCheckFailed as exc:
                    log.warning("hub.channel.policy_error", topic=self.name, error=str(exc))
                    return
            if not self.can_write:
                return  # dropped silently, even with ack, as Realtime does
        state.limits.events.add(1)
        if isinstance(payload, UserPayload):
            size = len(payload.data)
            message: JsonBroadcast | UserBroadcast = UserBroadcast(self.topic, payload)
        else:
            # Any JSON value: Realtime's BroadcastHandler neither checks nor wraps it, so a list
            # or a string is fanned out as it came and acknowledged like an object.
            text = dumps(payload)
            size = len(text.encode())
            message = JsonBroadcast(self.topic, text)
        if state.limits.payload_too_large(size):
            if self.config.ack:
                self.reply(ref, "error", "payload_size_exceeded")
            return
        state.publish(self.key, message, exclude=None if self.config.self_broadcast else self)
        if self.config.ack:
            self.reply(ref, "ok", {})

    def reply(self, ref: str | None, status: str, response: Any) -> None:
        self.conn.send(self.serializer.reply(self.join_ref, ref, self.topic, status, response))
