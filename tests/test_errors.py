"""How errors read in messages and log fields."""

from __future__ import annotations

import asyncpg

from daemon.db import connect_error
from daemon.errors import ConfigError, DatabaseError, describe


def test_describe_gives_the_class_and_its_text() -> None:
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


def test_describe_of_an_error_without_text_is_its_class() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("   ")) == "ValueError"


def test_a_wrong_password_is_blamed_on_the_credentials() -> None:
    exc = asyncpg.InvalidPasswordError('password authentication failed for user "postgres"')
    error = connect_error("postgresql://postgres:hunter2@db:5432/app", exc, "", 10.0)
    assert isinstance(error, DatabaseError)
    message = str(error)
    assert 'password authentication failed for user "postgres"' in message
    assert "Check the user name and password in DATABASE_URL" in message
    assert "reachable server" not in message
    assert "hunter2" not in message


def test_an_unreachable_server_is_blamed_on_the_address() -> None:
    exc = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    message = str(connect_error("postgresql://db:1/app", exc, "", 10.0))
    assert "to a reachable server (check the host and port" in message


def test_a_timeout_names_its_bound() -> None:
    message = str(connect_error("postgresql://db/app", TimeoutError(), "", 2.0))
    assert "timed out after 2 s (database.connect_timeout_s)" in message


def test_settings_asyncpg_cannot_use_are_a_config_error() -> None:
    exc = OverflowError("connect(): port must be 0-65535.")
    assert isinstance(connect_error(None, exc, "", 10.0), ConfigError)
