"""The demo's web server: the results page, its bundled JS, and the refetch endpoint.

There is no PostgREST locally, so the page's injected refetch POSTs here and this server runs
read_assignment_results under the caller's verified JWT (exactly what the dashboard's server
action does with supabase.rpc). The page itself is built by `npm run build` into
clients/js/dist (make install-js); nothing comes from a CDN.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from daemon.client.matrix import RefetchRequest, Scope
from daemon.client.refetch import (
    AssignmentNotFoundError,
    PermanentRefetchError,
    RefetchDeniedError,
    claims_from_token,
    read_assignment_results,
)
from daemon.errors import ConfigError, DatabaseError
from daemon.log import get_logger
from daemon.net import bind_listening_socket

log = get_logger(__name__)

ASSETS_ENV = "RESULTS_REALTIME_DEMO_ASSETS"
_FILES = {
    "/": ("index.html", "text/html"),
    "/index.html": ("index.html", "text/html"),
    "/page.css": ("page.css", "text/css"),
    "/demo-page.js": ("demo-page.js", "application/javascript"),
}


def assets_dir() -> Path:
    """$RESULTS_REALTIME_DEMO_ASSETS, else the page an installed wheel carries (hatch_build.py),
    else clients/js/dist of this checkout."""
    if os.environ.get(ASSETS_ENV):
        return Path(os.environ[ASSETS_ENV])
    packaged = Path(__file__).resolve().parent / "page"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "clients" / "js" / "dist"


def assets_ready(root: Path) -> bool:
    return all((root / name).is_file() for name, _ in _FILES.values())


def how_to_build(root: Path) -> str:
    """What makes the page appear: in a checkout, building it; an installed package whose wheel
    was built without npm carries none, so it is pointed at one built elsewhere."""
    checkout = root.parent / "package.json"
    if os.environ.get(ASSETS_ENV):
        return (
            f"{ASSETS_ENV}={root} holds no built page (index.html, page.css, demo-page.js): "
            "point it at clients/js/dist of a checkout after `make install-js`"
        )
    if checkout.is_file():
        return f"run `make install-js` (npm run build in {checkout.parent}) to build it"
    return (
        "this installation has no demo page (its wheel was built where npm was missing): "
        "install a wheel built with npm on PATH, run the demo from a checkout (`make demo`), or "
        f"set {ASSETS_ENV} to clients/js/dist of a checkout after `make install-js`"
    )


@dataclass(frozen=True, slots=True)
class PageGroup:
    group_id: str
    name: str
    teacher_token: str


@dataclass(frozen=True, slots=True)
class PageSettings:
    supabase_url: str  # the hub (or a Supabase project)
    anon_key: str
    jwt_secret: str  # verifies the bearer token of refetch requests
    lesson_id: str
    title: str
    groups: tuple[PageGroup, ...]
    names: Mapping[str, str]
    enabled: bool
    poll_interval_s: float


_POOL = web.AppKey("pool", asyncpg.Pool)
_SETTINGS = web.AppKey("settings", PageSettings)
_ASSETS = web.AppKey("assets", Path)


def build_app(pool: asyncpg.Pool, settings: PageSettings, assets: Path) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[_POOL] = pool
    app[_SETTINGS] = settings
    app[_ASSETS] = assets
    for path in _FILES:
        app.router.add_get(path, _asset)
    app.router.add_get("/config.json", _config)
    app.router.add_post("/api/read_assignment_results", _read_assignment_results)
    return app


async def _asset(request: web.Request) -> web.StreamResponse:
    name, content_type = _FILES[request.path]
    path = request.app[_ASSETS] / name
    if not path.is_file():
        return web.Response(
            status=503,
            text=f"The demo page is not built: {how_to_build(request.app[_ASSETS])}. "
            "The terminal view works without it.",
        )
    return web.FileResponse(
        path, headers={"content-type": content_type, "cache-control": "no-store"}
    )


def _group(settings: PageSettings, group_id: str | None) -> PageGroup:
    for group in settings.groups:
        if group.group_id == group_id:
            return group
    return settings.groups[0]


async def _config(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS]
    group = _group(settings, request.query.get("group"))
    body = {
        "supabaseUrl": settings.supabase_url,
        "anonKey": settings.anon_key,
        "accessToken": group.teacher_token,
        "groupId": group.group_id,
        "lessonId": settings.lesson_id,
        "enabled": settings.enabled,
        "pollIntervalMs": int(settings.poll_interval_s * 1000),
        "title": f"{settings.title} · {group.name}",
        "names": dict(settings.names),
        "groups": [
            {"id": g.group_id, "name": g.name, "href": f"/?group={g.group_id}"}
            for g in settings.groups
        ],
    }
    return web.json_response(body, headers={"cache-control": "no-store"})


def _optional(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"{key} must be a string or null")
    return value


async def _read_assignment_results(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS]
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return web.json_response({"message": "Authorization: Bearer <jwt> is required"}, status=401)
    try:
        claims = claims_from_token(auth[7:].strip(), secret=settings.jwt_secret)
    except ConfigError as exc:
        return web.json_response({"message": str(exc)}, status=401)
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"message": "the body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"message": "the body must be a JSON object"}, status=400)
    group_id, lesson_id = _optional(body, "group_id"), _optional(body, "lesson_id")
    pupil_id, activity_id = _optional(body, "pupil_id"), _optional(body, "activity_id")
    if group_id is None or lesson_id is None:
        return web.json_response({"message": "group_id and lesson_id are required"}, status=400)
    if pupil_id is not None:
        try:
            uuid.UUID(pupil_id)
        except ValueError:
            return web.json_response({"message": "pupil_id must be a uuid"}, status=400)
    scope: Scope = (
        "cell"
        if pupil_id and activity_id
        else "pupil"
        if pupil_id
        else "activity"
        if activity_id
        else "assignment"
    )
    fetch = RefetchRequest(scope=scope, reason="page", pupil_id=pupil_id, activity_id=activity_id)
    try:
        async with request.app[_POOL].acquire() as conn:
            result = await read_assignment_results(conn, group_id, lesson_id, fetch, claims)
    except PermanentRefetchError as exc:  # the code, as PostgREST gives it: the client stops
        statuses = {RefetchDeniedError.code: 403, AssignmentNotFoundError.code: 404}
        status = statuses.get(exc.code, 500)
        return web.json_response({"message": str(exc), "code": exc.code}, status=status)
    except DatabaseError as exc:
        log.warning("demo.web.refetch_failed", error=str(exc))
        code = getattr(exc.__cause__, "sqlstate", None)
        return web.json_response({"message": str(exc), "code": code}, status=500)
    return web.json_response(result, headers={"cache-control": "no-store"})


def bind(host: str, port: int, *, what: str, option: str = "--web-port") -> socket.socket:
    """`option` is how the command that serves the page lets its port be changed."""
    return bind_listening_socket(
        host,
        port,
        what=what,
        hint=f"Another demo running? Stop it, or pass {option} N (0 picks a free port).",
    )


async def start_web(app: web.Application, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    return runner
