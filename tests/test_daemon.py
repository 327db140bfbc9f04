"""The daemon in-process against a real PostgreSQL and a real HTTP server."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.capture_server import CaptureServer
from tests.support.daemon import fast_settings, running
from tests.support.school import seed_school, submit_text


def last_cell(
    server: CaptureServer, channel: str, activity: str, pupil: str
) -> dict[str, Any] | None:
    """The latest state of one cell among the accepted messages of a channel."""
    found = None
    for message in server.by_channel().get(channel, []):
        payload = message["payload"]
        cells = payload["cells"] if message["event"] == "result_cells" else [payload]
        for cell in cells:
            if cell.get("activityId") == activity and cell.get("pupilId") == pupil:
                found = cell
    return found


async def test_text_submission_reaches_the_channel(
    database_url: str, db: asyncpg.Connection, capture_server: CaptureServer
) -> None:
    school = await seed_school(db)
    pupil = str(school.pupils[0])
    async with running(database_url, fast_settings(capture_server.url)):
        await submit_text(db, "a-text", school.pupils[0], "hello")
        await capture_server.wait_until(
            lambda s: last_cell(s, school.channel(), "a-text", pupil) is not None
        )
    cell = last_cell(capture_server, school.channel(), "a-text", pupil)
    assert cell is not None
    assert cell["status"] == "submitted"
    assert cell["needsMarking"] is True
    assert cell["seq"] == 1
