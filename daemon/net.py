"""Listening sockets that fail with a message saying which port is taken and what to do."""

from __future__ import annotations

import errno
import socket

from daemon.errors import PortInUseError


def bind_listening_socket(
    host: str, port: int, *, what: str, hint: str, backlog: int = 128
) -> socket.socket:
    """Bind before starting a server, so a taken port is a PortInUseError (exit 5), not a trace."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"the {what} cannot listen on {host}:{port}: the port is already in use. {hint}"
            ) from None
        raise PortInUseError(f"the {what} cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
