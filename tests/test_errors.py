"""How errors read in messages and log fields."""

from __future__ import annotations

from daemon.errors import describe


def test_describe_gives_the_class_and_its_text() -> None:
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


def test_describe_of_an_error_without_text_is_its_class() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("   ")) == "ValueError"
