"""Configuration: precedence, validation messages, redaction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.config import (
    Override,
    Settings,
    env_name,
    known_env_names,
    load_settings,
    redact_dsn,
    redacted,
)
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


def file_refusal(tmp_path: Path, text: str) -> tuple[Path, str]:
    """A config file holding `text`, and the message of the ConfigError that refuses it."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, {})
    return cfg, str(info.value)


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    cfg, message = file_refusal(tmp_path, "[daemon]\nbatch_sise = 3\n")
    assert f"daemon.batch_sise (from {cfg}): unknown key; did you mean batch_size?" in message
    assert "log_level" not in message  # a suggestion, not the whole list


def test_unknown_key_without_a_near_miss_lists_the_known_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[daemon]\nzzz = 3\n")
    with pytest.raises(ConfigError, match=r"daemon.zzz .*unknown key; known keys: batch_size, "):
        load_settings(cfg, {})


def test_unknown_section_suggests_the_closest(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[deamon]\nbatch_size = 3\n")
    with pytest.raises(ConfigError, match=r"unknown section \[deamon\]; did you mean \[daemon\]\?"):
        load_settings(cfg, {})


def test_a_key_outside_any_section_names_its_section(tmp_path: Path) -> None:
    _, message = file_refusal(tmp_path, "batch_size = 3\n")
    assert "batch_size is outside any section; put it under [daemon]" in message
    assert "unknown section" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw123file@db:5432/app",
        "postgresql://app@db:5432/app?password=pw123file",
        "postgresql://app:p#w/123file@db:5432/app",
    ],
)
def test_a_password_in_the_config_files_database_url_is_refused(tmp_path: Path, url: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, {"DATABASE_URL": "postgresql://app:fromenv@db/app"})
    message = str(info.value)
    assert f"database.url (from {cfg}): holds a password" in message
    assert "set environment variable DATABASE_URL" in message
    assert "123file" not in message
    assert "fromenv" not in message


def test_a_database_url_without_password_in_the_config_file_is_used(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\nurl = "postgresql://app@db:5432/app?sslmode=require"\n')
    assert load_settings(cfg, {}).database.url == "postgresql://app@db:5432/app?sslmode=require"


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


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://app:pw123@db:5432/app", "pw123"),
        ("postgresql://app@db:5432/app?password=pw123", "pw123"),
        ("postgresql://app@db/app?sslmode=disable&sslpassword=pw123&x=1", "pw123"),
        ("postgresql://app:p?w/123@db/app", "p?w/123"),  # a password holding URL delimiters
        ("host=db user=app password=pw123 dbname=app", "pw123"),
        ("host=db password='pw 123' dbname=app", "pw 123"),
    ],
)
def test_redact_dsn_hides_every_form_of_password(dsn: str, secret: str) -> None:
    shown = redact_dsn(dsn)
    assert secret not in shown
    assert "***" in shown
    assert "db" in shown  # the server is still named


def test_redacted_config_hides_a_query_password() -> None:
    env = {"DATABASE_URL": "postgresql://app@db:5432/app?password=hunter2q"}
    shown = str(redacted(load_settings(None, env)))
    assert "hunter2q" not in shown
    assert "postgresql://app@db:5432/app?password=***" in shown


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("host=db user=app password=pw123", "keyword/value string .* is not supported"),
        ("not a url", "not a PostgreSQL URL; expected postgresql://"),
        ("mysql://app@db/app", "scheme must be postgresql:// or postgres://, not mysql://"),
        ("postgresql://app:pw123@db:99999/app", "port '99999' is not a number from 1 to 65535"),
        ("postgresql://app:pw123@db:abc/app", "port 'abc' is not a number"),
        ("postgresql://app@[::1/app", "not a valid URL"),
    ],
)
def test_a_database_url_asyncpg_cannot_use_is_a_config_error(value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(None, {"DATABASE_URL": value})
    assert "database.url (from environment variable DATABASE_URL)" in str(info.value)
    assert "pw123" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "postgresql:///app",
        "postgres://app@db/app",
        "postgresql://h1:5432,h2:5433/app",
        "postgresql://[::1]:5432/app",
    ],
)
def test_database_urls_asyncpg_accepts_pass(value: str) -> None:
    assert load_settings(None, {"DATABASE_URL": value}).database.url == value


def _option(value: str) -> dict[tuple[str, str], Override]:
    return {("database", "url"): Override("--database-url", value)}


def test_an_option_beats_the_environment_and_is_validated_like_it() -> None:
    env = {"DATABASE_URL": "postgresql://env/app"}
    assert load_settings(None, env, _option("postgresql://db/app")).database.url == (
        "postgresql://db/app"
    )
    bad = _option("postgresql://app:pw123@db:0/app")
    expected = r"database\.url \(from --database-url\): port '0'"
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(None, env, bad)
    assert "pw123" not in str(info.value)


def test_an_environment_value_an_option_replaces_is_never_used() -> None:
    """A bad DATABASE_URL does not stop a command told which database to use."""
    env = {"DATABASE_URL": "host=db dbname=app"}
    assert load_settings(None, env, _option("postgresql://db/app")).database.url == (
        "postgresql://db/app"
    )


def test_an_option_for_a_key_that_does_not_exist_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match=r"--nope names no setting: daemon\.nope"):
        load_settings(None, {}, {("daemon", "nope"): Override("--nope", 1)})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a url", "scheme must be http:// or https://"),
        ("ftp://example.com", "not ftp://"),
        ("http://", "no host name"),
        ("http://127.0.0.1:99999", "not a valid URL"),
    ],
)
def test_a_realtime_url_that_is_not_http_is_a_config_error(value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(None, {"SUPABASE_URL": value})
    assert "realtime.url (from environment variable SUPABASE_URL)" in str(info.value)


def test_a_directory_as_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory; pass the path of a TOML file"):
        load_settings(tmp_path, {})


@pytest.mark.parametrize(
    ("key", "env"),
    [("service_role_key", "SUPABASE_SERVICE_ROLE_KEY"), ("jwt_secret", "SUPABASE_JWT_SECRET")],
)
def test_a_secret_in_the_config_file_is_refused(tmp_path: Path, key: str, env: str) -> None:
    cfg, message = file_refusal(tmp_path, f'[realtime]\n{key} = "eyJsecretinfile"\n')
    assert f"realtime.{key} (from {cfg})" in message
    assert f"set environment variable {env} instead" in message
    assert "eyJsecretinfile" not in message


def test_a_secret_from_the_environment_is_used() -> None:
    settings = load_settings(None, {"SUPABASE_SERVICE_ROLE_KEY": "from-env"})
    assert settings.realtime.service_role_key == "from-env"


def test_an_unknown_results_realtime_variable_suggests_the_closest() -> None:
    env = {"RESULTS_REALTIME_DAEMON_BATCHSIZE": "5"}
    with pytest.raises(ConfigError) as info:
        load_settings(None, env)
    message = str(info.value)
    assert "environment variable RESULTS_REALTIME_DAEMON_BATCHSIZE: no setting has this name" in (
        message
    )
    assert "did you mean RESULTS_REALTIME_DAEMON_BATCH_SIZE?" in message


def test_the_prefixed_twin_of_a_well_known_key_names_the_real_one() -> None:
    with pytest.raises(ConfigError, match=r"realtime.url's environment variable is SUPABASE_URL"):
        load_settings(None, {"RESULTS_REALTIME_REALTIME_URL": "http://x"})


def test_every_variable_the_package_reads_is_accepted() -> None:
    env = {name: "" for name in known_env_names()}  # "" is unset: only the names matter here
    env.update(
        {
            "RESULTS_REALTIME_TEACHER_TOKEN": "token",
            "RESULTS_REALTIME_DEMO_ASSETS": "/tmp",
            "RESULTS_REALTIME_PYTHON": "/usr/bin/python3",
            "RESULTS_REALTIME_DAEMON_BATCH_SIZE": "5",
        }
    )
    assert load_settings(None, env).daemon.batch_size == 5


@pytest.mark.parametrize(
    "password",
    ["p@ss", "p#ss/w", "p?ss", "ab/cd", "p#s=x/w"],
)
def test_a_password_with_a_url_delimiter_says_to_percent_encode_it(password: str) -> None:
    dsn = f"postgresql://postgres:{password}@127.0.0.1:5432/app"
    for error in _dsn_errors(dsn):
        message = str(error)
        assert "the password (or user name) contains '@', '#', '/' or '?'" in message
        assert "percent-encoded" in message
        assert "is not a number from 1 to 65535" not in message  # not about a port
        assert "got 'postgresql://postgres:***@127.0.0.1:5432/app'" in message  # none of it


def _dsn_errors(dsn: str) -> list[ConfigError]:
    """The errors of DATABASE_URL and of --database-url for one DSN."""
    errors = []
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"DATABASE_URL": dsn})
    errors.append(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(None, {}, _option(dsn))
    errors.append(info.value)
    return errors


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://postgres:p%40ss%23x%2F%3F@127.0.0.1:5432/app",  # encoded: fine
        "postgresql://127.0.0.1/app?user=a@b",  # an '@' in a query value is no password
        "postgresql://127.0.0.1:5432/app?user=a@b",
    ],
)
def test_encoded_credentials_and_an_at_in_the_query_pass(value: str) -> None:
    assert load_settings(None, {"DATABASE_URL": value}).database.url == value


@pytest.mark.parametrize(
    ("name", "key", "twin"),
    [
        (
            "RESULTS_REALTIME_SERVICE_ROLE_KEY",
            "realtime.service_role_key",
            "SUPABASE_SERVICE_ROLE_KEY",
        ),
        ("RESULTS_REALTIME_JWT_SECRET", "realtime.jwt_secret", "SUPABASE_JWT_SECRET"),
        ("RESULTS_REALTIME_SUPABASE_JWT_SECRET", "realtime.jwt_secret", "SUPABASE_JWT_SECRET"),
        ("RESULTS_REALTIME_SUPABASE_URL", "realtime.url", "SUPABASE_URL"),
    ],
)
def test_a_prefixed_guess_at_a_well_known_variable_names_the_real_one(
    name: str, key: str, twin: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {name: "abc"})
    message = str(info.value)
    assert f"environment variable {name}: no setting has this name" in message
    assert f"{key}'s environment variable is {twin}" in message
    assert "TEACHER_TOKEN" not in message


@pytest.mark.parametrize(
    ("section", "key", "kind"),
    [
        ("daemon", "health_port", "an integer"),
        ("daemon", "shutdown_timeout_s", "a number"),
        ("publish", "retry_max_attempts", "an integer"),
        ("daemon", "batch_size", "an integer"),
    ],
)
def test_a_boolean_for_a_number_is_refused_in_the_file_and_the_environment(
    tmp_path: Path, section: str, key: str, kind: str
) -> None:
    """Lax validation read `health_port = true` as port 1 and a timeout of true as 1 s. A
    boolean for a boolean (realtime.enabled) is still read, from both layers."""
    text = f"[realtime]\nenabled = false\n[{section}]\n{key} = true\n"
    cfg, message = file_refusal(tmp_path, text)
    assert f"{section}.{key} (from {cfg}): expected {kind}, not a boolean; got True" in message
    assert "realtime.enabled" not in message
    name = env_name(section, key)
    with pytest.raises(ConfigError) as info:
        load_settings(None, {name: "true", "RESULTS_REALTIME_ENABLED": "true"})
    message = str(info.value)
    assert f"{section}.{key} (from environment variable {name}): " in message
    assert "realtime.enabled" not in message


FLOAT_KEYS = [
    (section, key)
    for section, field in Settings.model_fields.items()
    for key, inner in field.annotation.model_fields.items()  # type: ignore[union-attr]
    if inner.annotation is float
]


@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS, ids=[f"{s}.{k}" for s, k in FLOAT_KEYS])
def test_every_float_setting_refuses_inf_and_nan(tmp_path: Path, section: str, key: str) -> None:
    """An infinite timeout passed validation, then threading.Timer raised OverflowError at stop."""
    assert {("daemon", "shutdown_timeout_s"), ("database", "connect_timeout_s")} <= set(FLOAT_KEYS)
    name = env_name(section, key)
    for value in ("inf", "-inf", "Infinity", "1e400", "nan"):
        with pytest.raises(ConfigError) as info:
            load_settings(None, {name: value})
        assert (
            f"{section}.{key} (from environment variable {name}): expected a finite number, "
            f"not inf or nan; got {value!r}"
        ) in str(info.value)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[{section}]\n{key} = inf\n")
    with pytest.raises(ConfigError, match=rf"{section}\.{key} \(from .*\): expected a finite"):
        load_settings(cfg, {})


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:54400?x=1",
        "https://ref.supabase.co/?apikey=abc",
        "https://ref.supabase.co#x",
        "http://127.0.0.1:54321?",
    ],
)
def test_a_realtime_url_with_a_query_or_fragment_is_refused(tmp_path: Path, value: str) -> None:
    """The daemon appends /realtime/v1/api/broadcast: ?x=1/realtime/v1/api/broadcast."""
    expected = (
        "it has a query string (?...) or fragment (#...); remove it: expected the project URL "
        "alone, such as https://<ref>.supabase.co"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"SUPABASE_URL": value})
    assert f"realtime.url (from environment variable SUPABASE_URL): {expected}" in str(info.value)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[realtime]\nurl = "{value}"\n')
    with pytest.raises(ConfigError, match=r"realtime\.url \(from .*\): it has a query string"):
        load_settings(cfg, {})
    option = {("realtime", "url"): Override("--url", value)}  # watch --url
    with pytest.raises(ConfigError, match=r"realtime\.url \(from --url\): it has a query string"):
        load_settings(None, {}, option)
    project_url = re.split(r"[?#]", value)[0]  # what the message says to do
    assert load_settings(None, {"SUPABASE_URL": project_url}).realtime.url == project_url
