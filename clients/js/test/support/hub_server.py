"""A hub for the JavaScript tests: throwaway database, seeded group, one JSON line, then wait.

Run by the vitest global setup. It prints one line,
    {"url", "jwtSecret", "anonKey", "serviceRoleKey", "teacherToken", "pupilToken", "topic"}
and serves until its stdin closes (the parent exited or finished), then cleans everything up.
Uses DATABASE_URL's server when set, otherwise a throwaway local PostgreSQL.

With --stack it runs the demo's whole stack instead (seeded school, hub, daemon, demo web page;
no simulated lesson) for the end-to-end client and browser tests, and prints the demo's
`demo.ready` JSON line (databaseUrl, hubUrl, webUrl, anonKey, groups with teacher tokens...).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid

import asyncpg

from daemon.config import HubSettings
from daemon.hub import run_hub
from daemon.localpg import LocalPostgres, configured_dsn
from daemon.log import configure_logging
from daemon.migrate import migrate
from daemon.tokens import mint_token, new_jwt_secret

GROUP, LESSON = "G-js", "L-js"


async def _seed(dsn: str, teacher: str, pupil: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("insert into public.groups (id, name) values ($1, $1)", GROUP)
        await conn.executemany(
            "insert into public.group_members (group_id, user_id, role) values ($1, $2, $3)",
            [(GROUP, teacher, "teacher"), (GROUP, pupil, "pupil")],
        )
    finally:
        await conn.close()


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def main(server_dsn: str) -> None:
    name = f"rr_js_{os.getpid()}"
    admin = await asyncpg.connect(server_dsn or None)
    await admin.execute(f'drop database if exists "{name}"')
    await admin.execute(f'create database "{name}"')
    base, _, _ = server_dsn.rpartition("/")
    dsn = f"{base}/{name}" if server_dsn else f"postgresql:///{name}"
    try:
        secret = new_jwt_secret()
        teacher, pupil = str(uuid.uuid4()), str(uuid.uuid4())
        await _seed(dsn, teacher, pupil)
        async with run_hub(HubSettings(port=0), database_url=dsn, jwt_secret=secret) as hub:
            info = {
                "url": hub.url,
                "jwtSecret": secret,
                "anonKey": mint_token(secret, role="anon"),
                "serviceRoleKey": mint_token(secret, role="service_role"),
                "teacherToken": mint_token(secret, role="authenticated", sub=teacher),
                "pupilToken": mint_token(secret, role="authenticated", sub=pupil),
                "topic": f"assignment_results:{GROUP}:{LESSON}",
            }
            print(json.dumps(info), flush=True)
            await _stdin_closed()
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


async def stack_main(server_dsn: str) -> None:
    """--stack: the demo stack on a fresh database of the server."""
    from daemon.config import Settings
    from daemon.demo.runner import DemoOptions, demo_stack

    name = f"rr_js_stack_{os.getpid()}"
    admin = await asyncpg.connect(server_dsn or None)
    await admin.execute(f'drop database if exists "{name}"')
    await admin.execute(f'create database "{name}"')
    base, _, _ = server_dsn.rpartition("/")
    dsn = f"{base}/{name}" if server_dsn else f"postgresql:///{name}"
    settings = Settings().model_copy(
        update={"database": Settings().database.model_copy(update={"url": dsn})}
    )
    options = DemoOptions(web_port=0, hub_port=0, simulate=False, live=False)
    try:
        async with demo_stack(settings, options) as stack:
            print(json.dumps(stack.ready_info()), flush=True)
            await _stdin_closed()
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


if __name__ == "__main__":
    configure_logging(level="warning", json=True)
    entry = stack_main if "--stack" in sys.argv[1:] else main
    configured = configured_dsn()
    if configured is not None:
        asyncio.run(entry(configured))
    else:
        with LocalPostgres() as pg:
            asyncio.run(entry(pg.dsn))
