"""The argparse types every command shares: the same option means the same thing everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from daemon import cli
from daemon.cli import build_parser, parse
from daemon.client.subscription import JoinDeniedError
from daemon.commands import demo, watch
from daemon.commands.args import port_number, seconds_or_forever, setting_options_given
from daemon.config import Override
from daemon.errors import ConfigError
from tests.support.process import cli_env, run_cli


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "soon", ""])
def test_a_duration_is_seconds_above_zero_or_zero(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="or 0 to run until Ctrl-C"):
        seconds_or_forever(text)
    assert seconds_or_forever("0") == 0
    assert seconds_or_forever("2.5") == 2.5


@pytest.mark.parametrize("command", [demo, watch])
def test_duration_zero_means_until_ctrl_c_in_demo_and_watch(command: object) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)  # type: ignore[attr-defined]
    [option] = [a for a in parser._actions if a.dest == "duration"]
    assert option.type is seconds_or_forever
    assert option.default == 0
    assert option.help is not None
    assert "0" in option.help
    assert "until Ctrl-C" in option.help


@pytest.mark.parametrize("text", ["-1", "65536", "http"])
def test_a_port_is_0_to_65535(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        port_number(text)
    assert port_number("0") == 0


async def test_the_hub_refuses_a_bad_port_before_it_needs_anything_else(tmp_path: Path) -> None:
    """No JWT secret, no database: the usage error comes first, naming the option (exit 2)."""
    code, _, err = await run_cli(["hub", "--port", "70000"], cli_env(None, None), tmp_path)
    assert code == 2, err
    assert "argument --port: must be between 0 and 65535" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["run", "--database-url", "postgresql://db/app", "--health-port", "0"],
            {
                ("database", "url"): Override("--database-url", "postgresql://db/app"),
                ("daemon", "health_port"): Override("--health-port", 0),
            },
        ),
        (["run", "--database-url", ""], {}),
        (["check"], {}),
        (
            ["hub", "--host", "::1", "--port", "9"],
            {("hub", "host"): Override("--host", "::1"), ("hub", "port"): Override("--port", 9)},
        ),
        (["watch", "--group", "g", "--lesson", "l", "--url", "http://x"],
         {("realtime", "url"): Override("--url", "http://x")}),
        (["demo", "--hub-port", "0"], {("hub", "port"): Override("--hub-port", 0)}),
        (["migrate", "--database-url", "postgresql:///x"],
         {("database", "url"): Override("--database-url", "postgresql:///x")}),
    ],
)  # fmt: skip
def test_options_that_name_a_setting_are_the_top_layer_of_that_command(
    argv: list[str], expected: dict[tuple[str, str], Override]
) -> None:
    """0 is given (the health endpoint off), an empty value is not; each command has its own."""
    assert setting_options_given(parse(build_parser(), argv)) == expected


def _failing_check(error: BaseException) -> object:
    def run(args: object) -> int:
        raise error

    return run


def test_a_task_group_that_failed_with_our_errors_reads_like_our_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = JoinDeniedError("assignment_results:g:l", "Unauthorized")
    group = ExceptionGroup(
        "unhandled errors in a TaskGroup",
        [
            denied,
            ExceptionGroup("inner", [ConfigError("database.url: not a URL")]),
        ],
    )
    monkeypatch.setattr("daemon.commands.check.run", _failing_check(group))

    code = cli.main(["check"])

    assert code == JoinDeniedError.exit_code == 4
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"results-realtime check: error: {denied}",
        "results-realtime check: error: database.url: not a URL",
    ]


def test_a_task_group_with_a_foreign_failure_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = ExceptionGroup("boom", [ConfigError("fine"), RuntimeError("a bug")])
    monkeypatch.setattr("daemon.commands.check.run", _failing_check(group))

    with pytest.raises(ExceptionGroup) as raised:
        cli.main(["check"])

    assert raised.value is group
