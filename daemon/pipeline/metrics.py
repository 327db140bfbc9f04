"""Prometheus metrics of one daemon, in its own registry (no global state, several per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "results_realtime_events_received",
            "Doorbell notifications heard and outbox rows claimed.",
            ["kind"],
            registry=r,
        )
        self.cells_published = Counter(
            "results_realtime_cells_published", "Cells carried by accepted messages.", registry=r
        )
        self.messages_sent = Counter(
            "results_realtime_messages_sent", "Messages Realtime accepted (202).", registry=r
        )
        self.requests = Counter(
            "results_realtime_publish_requests",
            "Broadcast requests by outcome.",
            ["outcome"],
            registry=r,
        )
        self.retries = Counter(
            "results_realtime_publish_retries",
            "Broadcast requests scheduled for retry.",
            registry=r,
        )
        self.dead_letters = Counter(
            "results_realtime_dead_letters", "Messages set aside after a 4xx.", registry=r
        )
        self.refreshes = Counter(
            "results_realtime_refreshes_staged", "result_refresh messages staged.", registry=r
        )
        self.outbox_depth = Gauge(
            "results_realtime_outbox_depth", "Raw outbox rows waiting to be staged.", registry=r
        )
        self.pending_depth = Gauge(
            "results_realtime_pending_messages", "Staged messages waiting for Realtime.", registry=r
        )
        self.publish_latency = Histogram(
            "results_realtime_publish_latency_seconds",
            "Duration of one accepted broadcast request, retries included.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Histogram(
            "results_realtime_commit_to_publish_lag_seconds",
            "From the oldest change a message carries to Realtime accepting it.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.leader = Gauge(
            "results_realtime_leader", "1 while this daemon holds the leader lock.", registry=r
        )
        self.listener_connected = Gauge(
            "results_realtime_listener_connected",
            "1 while the LISTEN connection is up.",
            registry=r,
        )
        self.listener_reconnects = Counter(
            "results_realtime_listener_reconnects", "LISTEN connection recoveries.", registry=r
        )
        self.enabled = Gauge(
            "results_realtime_enabled", "1 when the feature flag is on.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
