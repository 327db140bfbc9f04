"""The README's configuration table and config.toml document every key, with its env twin."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.config import SECRET_KEYS, Settings, env_name

ROOT = Path(__file__).resolve().parent.parent
KEYS = [
    (section, key)
    for section, field in Settings.model_fields.items()
    for key in field.annotation.model_fields  # type: ignore[union-attr]
]


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_readme_documents_key_and_env_twin(section: str, key: str) -> None:
    readme = (ROOT / "README.md").read_text()
    row = f"| `{section}.{key}` | `{env_name(section, key)}` |"
    assert row in readme


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_config_toml_sets_every_non_secret_key(section: str, key: str) -> None:
    text = (ROOT / "config.toml").read_text()
    config = tomllib.loads(text)
    if (section, key) in SECRET_KEYS:
        assert key not in config.get(section, {})
    elif (section, key) == ("database", "url"):
        assert "# url = " in text  # documented, left unset so PG* variables work
    else:
        assert key in config[section]


def test_shipped_config_file_is_valid() -> None:
    from daemon.config import load_settings

    settings = load_settings(ROOT / "config.toml", env={})
    assert settings == Settings()  # the file restates the defaults, it does not change them


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / "README.md").read_text()
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
