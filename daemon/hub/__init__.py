"""The local hub: a Supabase-Realtime-compatible server for development, tests and the demo."""

from daemon.hub.server import Hub, run_hub

__all__ = ["Hub", "run_hub"]
