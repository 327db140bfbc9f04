"""argparse types: a bad value is a usage error (exit 2, naming the option) before anything
starts, not a traceback after the database was set up. And options that set a configuration
key: the top layer of the settings, above the file and the environment."""

from __future__ import annotations

import argparse
import errno
import math
import socket
from typing import Any

from daemon.config import Override, Settings, load_settings

_SETTING_OPTIONS = "setting_options"  # the namespace attribute: dest -> (option, key)


def add_setting_option(
    parser: argparse.ArgumentParser, option: str, key: tuple[str, str], **kwargs: Any
) -> None:
    """An option that sets the configuration key `key` (section, name) for this command; a bad
    value is reported like one from the file or the environment, naming the option."""
    action = parser.add_argument(option, **kwargs)
    known = dict(parser.get_default(_SETTING_OPTIONS) or {})
    known[action.dest] = (option, key)
    parser.set_defaults(**{_SETTING_OPTIONS: known})


def setting_options_given(args: argparse.Namespace) -> dict[tuple[str, str], Override]:
    """The keys the command line set (an empty value counts as not given)."""
    known: dict[str, tuple[str, tuple[str, str]]] = getattr(args, _SETTING_OPTIONS, None) or {}
    given: dict[tuple[str, str], Override] = {}
    for dest, (option, key) in known.items():
        value = getattr(args, dest, None)
        if value is not None and value != "":
            given[key] = Override(option, value)
    return given


def settings_for(args: argparse.Namespace) -> Settings:
    """The command's settings: defaults < file < environment < its options."""
    return load_settings(args.config, overrides=setting_options_given(args))


def port_number(text: str) -> int:
    """0..65535 (what 0 means is the option's: any free port, or off)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535; got {port}")
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
