"""Listening sockets that fail with a message saying which port is taken and what to do."""

from __future__ import annotations

import errno
import socket

from daemon.errors import ConfigError, PortInUseError


def bind_listening_socket(
    host: str,
    port: int,
    *,
    what: str,
    hint: str,
    backlog: int = 128,
    host_option: str = "the host setting",
) -> socket.socket:
    """Bind before starting a server, so a taken port is a PortInUseError (exit 5), not a trace;
    a host that is no address of this machine is a usage error (exit 2), naming `host_option`."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"the {what} cannot listen on {host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"{where}: the port is already in use. {hint}") from None
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                f"{where}: {host!r} is not an address of this machine ({exc.strerror}); pass "
                f"{host_option} the address of one of its interfaces, e.g. 127.0.0.1 (0.0.0.0: all)"
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(
                f"{where}: {exc.strerror} (ports below 1024 need privileges). {hint}"
            ) from None
        raise PortInUseError(f"{where}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
