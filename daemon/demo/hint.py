"""The `results-realtime watch` command the demo prints: one line that works when pasted.

The teacher's token (about 230 characters) is not printed inside the banner, where the box
would wrap it and a copy would pick up its border: it goes to a file the command reads, and the
line itself is printed unboxed and unwrapped (the terminal only wraps it softly).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from daemon.commands.watch import TOKEN_ENV
from daemon.config import redact_dsn


def write_token(directory: Path, group_id: str, token: str) -> Path:
    """The token in a file only this user can read (the directory is the demo's, 0700)."""
    path = directory / f"teacher-{group_id}.jwt"
    path.touch(mode=0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return path


def cli_name() -> str:
    """How to call the CLI from another terminal: its full path when run as a script (the
    demo usually runs from .venv/bin, which is not on PATH)."""
    script = Path(sys.argv[0])
    return str(script.absolute()) if script.name == "results-realtime" else "results-realtime"


def watch_command(
    *, group_id: str, lesson_id: str, hub_url: str, database_url: str, token_file: Path
) -> list[str]:
    """The lines to print: what the command does, and the command on a line of its own."""
    shown_dsn = redact_dsn(database_url)
    command = " ".join(
        [
            f'{TOKEN_ENV}="$(cat {shlex.quote(str(token_file))})"',
            shlex.quote(cli_name()),
            "watch",
            f"--group {shlex.quote(group_id)}",
            f"--lesson {shlex.quote(lesson_id)}",
            f"--url {shlex.quote(hub_url)}",
            f"--database-url {shlex.quote(shown_dsn)}",
        ]
    )
    note = " (put the password in place of ***)" if shown_dsn != database_url else ""
    return [
        f"watch {group_id} in another terminal (the teacher's token is in {token_file}){note}:",
        command,
    ]
