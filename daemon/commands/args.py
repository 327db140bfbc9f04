"""argparse types: a bad value is a usage error (exit 2, naming the option) before anything
starts, not a traceback after the database was set up."""

from __future__ import annotations

import argparse
import errno
import math
import socket


def port_number(text: str) -> int:
    """0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535 (0: any free); got {port}")
    return port


def positive_number(text: str) -> float:
    """A finite number above 0 (seconds, a factor)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0; got {text}")
    return value


def seconds_or_forever(text: str) -> float:
    """How long a command runs: a finite number of seconds above 0, or 0 for until Ctrl-C."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds greater than 0, or 0 to run until Ctrl-C; got {text!r}"
        )
    return seconds


def local_address(text: str) -> str:
    """An address of this machine to listen on: an IP address or a host name that resolves to
    one (checked by binding a free port on it, at once released)."""
    try:
        infos = socket.getaddrinfo(text, 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an IP address nor a host name that resolves "
            "(e.g. 127.0.0.1, 0.0.0.0, localhost)"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:  # port 0 is never taken; be safe anyway
                return text
            raise argparse.ArgumentTypeError(
                f"cannot listen on {text}: {exc.strerror} (not an address of this machine; "
                "e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
            ) from None
    return text
