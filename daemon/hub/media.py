"""Media types as Realtime's Plug pipeline reads them: which bodies get parsed, and how an
unparseable one is answered.

Realtime's endpoint runs `Plug.Parsers` (urlencoded, multipart, json, octet-stream; everything
else passes unparsed) before any route or plug, so a malformed JSON body is a 400 rendered by
Phoenix's error view (`Bad Request`, as HTML unless the client asks for JSON), before the rate
limit or the token is looked at; a body of any other media type is simply not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

_TOKEN = re.compile(r"[!#$%&'+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str
    subtype: str

    @property
    def is_json(self) -> bool:
        """What `Plug.Parsers.JSON` parses: application/json and application/*+json."""
        return self.type == "application" and (
            self.subtype == "json" or self.subtype.endswith("+json")
        )


def content_type(header: str) -> MediaType | None:
    """`Plug.Conn.Utils.content_type/1`: `type/subtype`, lowercased; parameters ignored; None
    when the header is not a media type."""
    kind, _, _ = header.partition(";")
    main, slash, sub = kind.strip().partition("/")
    if not slash or not _TOKEN.fullmatch(main) or not _TOKEN.fullmatch(sub):
        return None
    return MediaType(main.lower(), sub.lower())


def _error_format(accept: str | None) -> Literal["html", "json"]:
    """Phoenix's `accepts(conn, ["html", "json"])` for the error page: HTML without an Accept
    header or with `*/*` in it (a browser, it assumes), else the best of text/html and
    application/json by q, and HTML when neither is named."""
    if not accept or "*/*" in accept:
        return "html"
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept.split(",")):
        name, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0
        ranked.append((-q, index, name.lower()))
    for _, _, name in sorted(ranked):
        if name == "text/html":
            return "html"
        if name == "application/json":
            return "json"
    return "html"


def bad_request(request: web.Request) -> web.Response:
    """What Phoenix renders for `Plug.Parsers.ParseError` with Realtime's `ErrorView`, which has
    no templates: the status text, as HTML or as a JSON string."""
    if _error_format(request.headers.get("accept")) == "json":
        return web.json_response("Bad Request", status=400)
    return web.Response(status=400, text="Bad Request", content_type="text/html")
