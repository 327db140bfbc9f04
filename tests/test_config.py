"""Configuration: precedence, validation messages, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_settings, redacted
from daemon.errors import ConfigError


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.realtime.enabled is True
    assert settings.hub.port == 54321


def test_env_beats_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[publish]\nmax_messages_per_second = 10\n[realtime]\nenabled = true\n")
    env = {
        "RESULTS_REALTIME_PUBLISH_MAX_MESSAGES_PER_SECOND": "7",
        "RESULTS_REALTIME_ENABLED": "false",
    }
    settings = load_settings(cfg, env)
    assert settings.publish.max_messages_per_second == 7
    assert settings.realtime.enabled is False


def test_bad_value_names_key_source_and_expectation(tmp_path: Path) -> None:
    env = {"RESULTS_REALTIME_DAEMON_BATCH_SIZE": "lots"}
    with pytest.raises(ConfigError) as info:
        load_settings(None, env)
    message = str(info.value)
    assert "daemon.batch_size" in message
    assert "RESULTS_REALTIME_DAEMON_BATCH_SIZE" in message
    assert "integer" in message


def test_unknown_key_lists_known_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[daemon]\nbatch_sise = 3\n")
    with pytest.raises(ConfigError, match=r"daemon.batch_sise .*unknown key.*batch_size"):
        load_settings(cfg, {})


def test_unknown_section(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[deamon]\nbatch_size = 3\n")
    with pytest.raises(ConfigError, match=r"unknown section \[deamon\]"):
        load_settings(cfg, {})


def test_secrets_are_redacted() -> None:
    env = {
        "SUPABASE_SERVICE_ROLE_KEY": "service-secret",
        "SUPABASE_JWT_SECRET": "jwt-secret",
        "DATABASE_URL": "postgresql://app:pw123@db:5432/app",
    }
    shown = str(redacted(load_settings(None, env)))
    for secret in ("service-secret", "jwt-secret", "pw123"):
        assert secret not in shown
    assert "postgresql://app:***@db:5432/app" in shown
