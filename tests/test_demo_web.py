"""The demo web server: page assets, per-group config, the refetch endpoint's authorization."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from daemon.demo.seed import School, seed
from daemon.demo.web import (
    ASSETS_ENV,
    PageGroup,
    PageSettings,
    bind,
    build_app,
    how_to_build,
    start_web,
)
from daemon.errors import PortInUseError
from daemon.tokens import mint_token
from tests.fixtures.client import LESSON


@pytest.fixture
async def web(
    database_url: str, jwt_secret: str, small_school: School, tmp_path: Path
) -> AsyncIterator[tuple[str, School]]:
    conn = await asyncpg.connect(database_url)
    await seed(conn, small_school)
    await conn.close()
    for name in ("index.html", "page.css", "demo-page.js"):
        (tmp_path / name).write_text(f"/* {name} */")
    tokens = {
        g.id: mint_token(jwt_secret, role="authenticated", sub=small_school.teacher_of(g.id).id)
        for g in small_school.groups
    }
    groups = tuple(PageGroup(g.id, g.name, tokens[g.id]) for g in small_school.groups)
    settings = _page_settings(jwt_secret, groups, small_school.names)
    async with _serving(database_url, settings, tmp_path) as base:
        yield base, small_school


def _page_settings(
    jwt_secret: str, groups: tuple[PageGroup, ...] = (), names: Mapping[str, str] | None = None
) -> PageSettings:
    return PageSettings(
        supabase_url="http://127.0.0.1:1",
        anon_key="anon",
        jwt_secret=jwt_secret,
        lesson_id=LESSON,
        title="Photosynthesis",
        groups=groups,
        names=dict(names or {}),
        enabled=True,
        poll_interval_s=5,
    )


@contextlib.asynccontextmanager
async def _serving(database_url: str, settings: PageSettings, assets: Path) -> AsyncIterator[str]:
    """The page server on a free port; its base URL."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    sock = bind("127.0.0.1", 0, what="test page")
    runner = await start_web(build_app(pool, settings, assets), sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()
        await pool.close()


async def _read(base: str, token: str | None, body: object) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/read_assignment_results", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_assets_and_config_are_served(web: tuple[str, School]) -> None:
    base, school = web
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/demo-page.js") as response:
            assert response.status == 200
            assert response.content_type == "application/javascript"
            assert "demo-page.js" in await response.text()
        async with http.get(f"{base}/") as response:
            assert response.content_type == "text/html"
        async with http.get(f"{base}/config.json?group=grp-7b") as response:
            config = await response.json()
    assert config["groupId"] == "grp-7b"
    assert config["lessonId"] == LESSON
    assert [g["id"] for g in config["groups"]] == ["grp-7a", "grp-7b"]
    assert config["names"][school.pupils_of("grp-7b")[0].id] == school.pupils_of("grp-7b")[0].name


async def test_refetch_runs_under_the_teachers_claims(
    web: tuple[str, School], jwt_secret: str
) -> None:
    base, school = web
    teacher_a = mint_token(jwt_secret, role="authenticated", sub=school.teacher_of("grp-7a").id)
    status, body = await _read(base, teacher_a, {"group_id": "grp-7a", "lesson_id": LESSON})
    assert status == 200
    assert isinstance(body, dict)
    assert len(body["cells"]) == 3 * 6
    pupil = school.pupils_of("grp-7a")[1].id
    status, body = await _read(
        base, teacher_a, {"group_id": "grp-7a", "lesson_id": LESSON, "pupil_id": pupil}
    )
    assert status == 200
    assert isinstance(body, dict)
    assert {c["pupilId"] for c in body["cells"]} == {pupil}
    # The other group's teacher, a pupil, no token, a forged token: refused.
    teacher_b = mint_token(jwt_secret, role="authenticated", sub=school.teacher_of("grp-7b").id)
    assert await _read(base, teacher_b, {"group_id": "grp-7a", "lesson_id": LESSON}) == (
        403,
        {
            "message": "read_assignment_results refused grp-7a/lesson-photosynthesis: "
            "read_assignment_results: not allowed to read the results of group grp-7a. The token "
            "must belong to a teacher of the group.",
            "code": "42501",  # as PostgREST gives it: the page's client stops, status denied
        },
    )
    unassigned = await _read(base, teacher_a, {"group_id": "grp-7a", "lesson_id": "nope"})
    assert unassigned[0] == 404
    assert isinstance(unassigned[1], dict)
    assert unassigned[1]["code"] == "P0002"
    pupil_token = mint_token(jwt_secret, role="authenticated", sub=pupil)
    assert (await _read(base, pupil_token, {"group_id": "grp-7a", "lesson_id": LESSON}))[0] == 403
    assert (await _read(base, None, {"group_id": "grp-7a", "lesson_id": LESSON}))[0] == 401
    forged = mint_token("x" * 40, role="authenticated", sub=school.teacher_of("grp-7a").id)
    assert (await _read(base, forged, {"group_id": "grp-7a", "lesson_id": LESSON}))[0] == 401
    assert (await _read(base, teacher_a, {"group_id": "grp-7a"}))[0] == 400
    assert (await _read(base, teacher_a, {"group_id": "grp-7a", "lesson_id": LESSON,
                                          "pupil_id": "nope"}))[0] == 400  # fmt: skip


def test_a_taken_port_is_reported_clearly() -> None:
    first = bind("127.0.0.1", 0, what="demo web page")
    try:
        port = first.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port}.*already in use"):
            bind("127.0.0.1", port, what="demo web page")
    finally:
        first.close()


def test_a_missing_page_is_explained_for_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    (tmp_path / "package.json").write_text("{}")  # clients/js of a checkout
    assert how_to_build(tmp_path / "dist") == (
        f"run `make install-js` (npm run build in {tmp_path}) to build it"
    )


def test_a_missing_page_is_explained_for_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel built without npm has no page: `make install-js` means nothing where there is no
    checkout."""
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    hint = how_to_build(tmp_path / "clients" / "js" / "dist")
    assert hint.startswith("this installation has no demo page (its wheel was built where npm")
    assert "run the demo from a checkout" in hint
    assert ASSETS_ENV in hint


def test_a_missing_page_is_explained_for_the_assets_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    assert how_to_build(tmp_path).startswith(f"{ASSETS_ENV}={tmp_path} holds no built page")


async def test_the_page_itself_says_what_is_missing(
    database_url: str, jwt_secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    async with (
        _serving(database_url, _page_settings(jwt_secret), tmp_path / "dist") as base,
        aiohttp.ClientSession() as http,
        http.get(f"{base}/") as response,
    ):
        assert response.status == 503
        text = await response.text()
    assert text.startswith("The demo page is not built: this installation has no demo page")
    assert text.endswith("The terminal view works without it.")
