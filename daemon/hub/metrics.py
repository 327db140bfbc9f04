"""Prometheus metrics of one hub, in its own registry (several hubs can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sockets = Gauge("hub_sockets", "Open websocket connections.", registry=self.registry)
        self.channels = Gauge(
            "hub_channels", "Joined channels over all sockets.", registry=self.registry
        )
        self.deliveries = Counter(
            "hub_deliveries", "Broadcast frames written to subscribers.", registry=self.registry
        )
        self.joins = Counter("hub_joins", "Successful channel joins.", registry=self.registry)
        self.denied_joins = Counter(
            "hub_denied_joins", "Channel joins refused.", ["code"], registry=self.registry
        )
        self.refused_sockets = Counter(
            "hub_refused_sockets", "Websocket upgrades refused.", ["status"], registry=self.registry
        )
        self.rest_messages = Counter(
            "hub_rest_messages",
            "Messages accepted by the REST broadcast API.",
            registry=self.registry,
        )
        self.rest_rejected = Counter(
            "hub_rest_rejected",
            "REST broadcast requests refused.",
            ["status"],
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "hub_slow_consumers",
            "Sockets closed for not reading fast enough.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
