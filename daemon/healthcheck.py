"""`python -m daemon.healthcheck`: the container's HEALTHCHECK, exit 0 when /healthz answers 200.

It reads the settings as `run` does (RESULTS_REALTIME_CONFIG, the environment), so the probe
follows RESULTS_REALTIME_DAEMON_HEALTH_PORT / daemon.health_port instead of a fixed port. An
endpoint turned off (port 0) has nothing to probe: healthy.
"""

from __future__ import annotations

import sys
import urllib.request

from daemon.config import load_settings
from daemon.errors import ConfigError, describe

_TIMEOUT_S = 2.0
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url() -> str | None:
    """Where the daemon's /healthz listens, by its settings; None when it is turned off."""
    daemon = load_settings().daemon
    if daemon.health_port == 0:
        return None
    host = _ANY_ADDRESS.get(daemon.health_host, daemon.health_host)
    return f"http://{f'[{host}]' if ':' in host else host}:{daemon.health_port}/healthz"


def main() -> int:
    try:
        url = healthz_url()
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    if url is None:
        print("healthcheck: the health endpoint is off (daemon.health_port = 0)")
        return 0
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            status = int(response.status)
    except OSError as exc:  # HTTPError (503 unhealthy) and URLError included
        print(f"healthcheck: {url}: {describe(exc)}", file=sys.stderr)
        return 1
    print(f"healthcheck: {url}: {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
