"""Shared fixtures. Each area keeps its own fixtures in tests/fixtures/<area>.py."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.hub",
    "tests.fixtures.pipeline",
    "tests.fixtures.client",
]
