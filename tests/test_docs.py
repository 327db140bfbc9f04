"""The README's configuration table and config.toml document every key, with its env twin."""

from __future__ import annotations

import re
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


# Misspellings the tests use on purpose, to show they are refused.
_DELIBERATE_TYPOS = {
    "RESULTS_REALTIME_DAEMON_BATCHSIZE",
    "RESULTS_REALTIME_REALTIME_URL",
    "RESULTS_REALTIME_SERVICE_ROLE_KEY",
    "RESULTS_REALTIME_JWT_SECRET",
    "RESULTS_REALTIME_SUPABASE_JWT_SECRET",
    "RESULTS_REALTIME_SUPABASE_URL",
}


def test_every_results_realtime_variable_in_the_repo_is_one_the_config_accepts() -> None:
    """An unknown RESULTS_REALTIME_* variable is a configuration error: none of ours may be one."""
    import re
    import subprocess

    from daemon.config import known_env_names

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    names: dict[str, str] = {}
    for relative in tracked:
        path = ROOT / relative
        if not path.is_file() or path.suffix in {".png", ".lock"}:
            continue
        for name in re.findall(
            r"\bRESULTS_REALTIME_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="ignore")
        ):
            names.setdefault(name, relative)
    unknown = {n: f for n, f in names.items() if n not in known_env_names() | _DELIBERATE_TYPOS}
    assert not unknown, f"variables the configuration would refuse: {unknown}"
    assert "RESULTS_REALTIME_TEACHER_TOKEN" in names  # the scan does see the whole repo


def test_the_container_healthcheck_follows_the_configured_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "8085" not in healthcheck
    assert '"python", "-m", "daemon.healthcheck"' in healthcheck
    assert 'ENTRYPOINT ["results-realtime"]' in dockerfile  # exec form, so SIGTERM reaches us


def _daemon_log_events() -> dict[str, str]:
    """Every `log.<level>("area.event", ...)` of the daemon's modules: event -> its source file."""
    import ast

    sources = [*(ROOT / "daemon" / "pipeline").glob("*.py"), ROOT / "daemon/commands/run.py"]
    events: dict[str, str] = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"debug", "info", "warning", "error", "exception"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and re.fullmatch(r"[a-z_]+\.[a-z_.]+", node.args[0].value)
            ):
                events[node.args[0].value] = path.name
    return events


def test_the_readme_lists_every_event_the_daemon_logs() -> None:
    events = _daemon_log_events()
    assert {"daemon.started", "batch.published", "leader.lost"} <= set(events)  # the scan works
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Every event the daemon (`run`) writes:") :]
    table = table[: table.index("\n\n", table.index("| event |"))]
    missing = {e: src for e, src in events.items() if f"`{e}`" not in table}
    assert not missing, f"log events missing from the README's table: {missing}"
