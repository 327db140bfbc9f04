"""What every part of one running hub shares: settings, registry, limits, metrics, authorizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from daemon.config import HubSettings
from daemon.hub.auth import Authorizer
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

    def __post_init__(self) -> None:
        self.limits = Limits(self.settings)

    def users(self) -> int:
        """Sockets with at least one joined channel (Realtime's "concurrent users")."""
        return sum(1 for conn in self.connections if conn.channels)

    def publish(
        self, key: StreamKey, message: Outgoing, *, exclude: Subscriber | None = None
    ) -> int:
        """Fan out, count deliveries as events, and shut channels down once the limit trips."""
        receivers = self.registry.publish(key, message, exclude=exclude)
        if not receivers:
            return 0
        count = len(receivers)
        self.metrics.deliveries.inc(count)
        self.limits.events.add(count)
        if self.limits.events_tripped():
            for receiver in receivers:
                receiver.shutdown(TOO_MANY_MESSAGES)
        return count


HUB_STATE = web.AppKey("hub_state", HubState)
