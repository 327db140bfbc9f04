"""A throwaway PostgreSQL for the demo and the tests when no server is configured.

Uses the machine's PostgreSQL binaries (PATH or /usr/lib/postgresql/*/bin) and falls back to the
`pgserver` PyPI package when there are none. As root, the server runs as an unprivileged user,
since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from daemon.db import PG_SERVER_VARIABLES
from daemon.errors import LocalPostgresError
from daemon.log import get_logger

log = get_logger(__name__)


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """May `user` enter every directory above `path` (by the mode bits; ACLs aside)?"""
    for directory in path.resolve().parents:
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def configured_dsn(env: Mapping[str, str] | None = None) -> str | None:
    """The DSN the user named (DATABASE_URL), "" when PG* variables name a server, else None."""
    env = os.environ if env is None else env
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"]
    if any(env.get(name) for name in PG_SERVER_VARIABLES):
        return ""
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _find_bin_dir() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


class LocalPostgres:
    """Start with `start()` (returns a DSN), stop with `stop()`; also a context manager."""

    def __init__(self, root: Path | None = None, *, port: int | None = None) -> None:
        self._owns_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="results-realtime-pg-"))
        self.port = port or free_port()
        self._pgserver: object | None = None
        self._bin: Path | None = None
        self.dsn = ""
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._aborted = False

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        self._bin = _find_bin_dir()
        if self._bin is None:
            return self._start_pgserver()
        run_as = self._unprivileged_user()
        if run_as and not _reachable_by(self.root, run_as):
            self._move_root_within_reach(run_as)
        data = self.root / "data"
        self.root.chmod(0o755)
        if run_as:
            os.chown(self.root, run_as.pw_uid, run_as.pw_gid)
        if not (data / "PG_VERSION").exists():
            self._run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                run_as,
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c max_connections=300 -c fsync=on"
        )
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            run_as,
        )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        log.info("localpg.started", port=self.port, data=str(data), bin=str(self._bin))
        return self.dsn

    def abort(self) -> None:
        """Stop a `start()` running in another thread: its current step (initdb, pg_ctl) is
        killed and no further step starts, so it fails soon with LocalPostgresError. `stop()`
        then removes what it had made."""
        with self._lock:
            self._aborted = True
            if self._child is not None and self._child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._child.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self._pgserver is not None:
            cleanup = getattr(self._pgserver, "cleanup", None)
            if callable(cleanup):
                cleanup()
            self._pgserver = None
        elif self._bin is not None and (self.root / "data" / "postmaster.pid").exists():
            self._run(
                [
                    str(self._bin / "pg_ctl"),
                    "-D",
                    str(self.root / "data"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                self._unprivileged_user(),
                check=False,
            )
            log.info("localpg.stopped", port=self.port)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _start_pgserver(self) -> str:
        try:
            import pgserver
        except ImportError:
            raise LocalPostgresError(
                "no PostgreSQL found: install the server binaries (e.g. `apt-get install "
                "postgresql`), or `pip install pgserver`, or set DATABASE_URL to an existing server"
            ) from None
        server = pgserver.get_server(str(self.root / "pgserver"), cleanup_mode="stop")
        self._pgserver = server
        uri: str = server.get_uri()
        self.dsn = uri
        return uri

    def _move_root_within_reach(self, run_as: pwd.struct_passwd) -> None:
        """TMPDIR inside a private directory (root's home, pytest's tmp_path): the server's user
        could not reach the data directory, and initdb would fail with "Permission denied"."""
        if not self._owns_root:
            raise LocalPostgresError(
                f"{self.root} cannot be reached by the user {run_as.pw_name!r}, who runs the "
                "PostgreSQL server (it refuses to run as root): choose a directory every user "
                "may enter, such as one under /tmp"
            )
        unreachable = self.root
        self.root = Path(tempfile.mkdtemp(prefix="results-realtime-pg-", dir="/tmp"))
        shutil.rmtree(unreachable, ignore_errors=True)
        log.info(
            "localpg.moved", unreachable=str(unreachable), root=str(self.root), user=run_as.pw_name
        )

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise LocalPostgresError("running as root but found no 'postgres' or 'nobody' user")

    def _run(self, cmd: list[str], run_as: pwd.struct_passwd | None, *, check: bool = True) -> None:
        """Run one step in its own session: a Ctrl-C at the terminal reaches the demo, which
        decides (abort), not initdb, which would fail noisily half-way."""
        if run_as is not None:
            cmd = ["runuser", "-u", run_as.pw_name, "--", *cmd]
        with self._lock:
            if check and self._aborted:
                raise LocalPostgresError("the start of the local PostgreSQL was interrupted")
            child = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self._child = child
        try:
            out, err = child.communicate()
        finally:
            with self._lock:
                self._child = None
        if check and self._aborted:
            raise LocalPostgresError("the start of the local PostgreSQL was interrupted")
        if check and child.returncode != 0:
            raise LocalPostgresError(
                f"{' '.join(cmd)} failed ({child.returncode}): {err.strip() or out}"
            )
