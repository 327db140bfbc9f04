"""What every part of one running hub shares: settings, registry, limits, metrics, authorizer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from daemon.config import HubSettings
from daemon.hub.auth import Authorizer, TokenVerifier
from daemon.hub.channels import Outgoing, Registry, StreamKey, Subscriber
from daemon.hub.limits import Limits
from daemon.hub.metrics import HubMetrics

if TYPE_CHECKING:
    from daemon.hub.socket import Connection

TOO_MANY_MESSAGES = "Too many messages per second"


@dataclass(eq=False)
class HubState:
    settings: HubSettings
    jwt_secret: str
    authorizer: Authorizer
    registry: Registry = field(default_factory=Registry)
    metrics: HubMetrics = field(default_factory=HubMetrics)
    connections: set[Connection] = field(default_factory=set)
    limits: Limits = field(init=False)
    tokens: TokenVerifier = field(init=False)
    # While a batch fans out: the frames for each socket, written once the batch is done.
    held: dict[Connection, bytes | list[bytes]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.limits = Limits(self.settings)
        self.tokens = TokenVerifier(self.jwt_secret)

    def users(self) -> int:
        """Sockets with at least one joined channel (Realtime's "concurrent users")."""
        return sum(1 for conn in self.connections if conn.channels)

    def publish(
        self, key: StreamKey, message: Outgoing, *, exclude: Subscriber | None = None
    ) -> int:
        """Fan out, count deliveries as events, and shut channels down once the limit trips."""
        count = self._fan_out(key, message, exclude)
        if count:
            self.metrics.deliveries.inc(count)
        return count

    def publish_batch(self, messages: Iterable[tuple[StreamKey, Outgoing]]) -> int:
        """Publish messages in order, each counted as one event before it fans out (as one by
        one). A socket's frames of the whole batch leave in one write, in the same order, and the
        deliveries metric moves once: per-delivery work is what limits fan-out."""
        held: dict[Connection, bytes | list[bytes]] = {}
        self.held = held
        total = 0
        try:
            for key, message in messages:
                self.limits.events.add(1)
                total += self._fan_out(key, message, None)
        finally:
            self.held = None
            for conn, queued in held.items():
                conn.write(queued if isinstance(queued, bytes) else b"".join(queued))
            if total:
                self.metrics.deliveries.inc(total)
        return total

    def _fan_out(self, key: StreamKey, message: Outgoing, exclude: Subscriber | None) -> int:
        count = self.registry.publish(key, message, exclude=exclude)
        if count:
            self.limits.events.add(count)
            if self.limits.events_tripped():
                for receiver in self.registry.receivers(key, message, exclude=exclude):
                    receiver.shutdown(TOO_MANY_MESSAGES)
        return count


HUB_STATE = web.AppKey("hub_state", HubState)
