"""A TCP server that accepts connections and never answers: to a client, a hung server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class SilentServer:
    def __init__(self) -> None:
        self.port = 0
        self.accepted = asyncio.Event()  # set on the first connection: the client now waits
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)  # kept open, never written to
        self.accepted.set()

    def dsn(self, password: str = "pw") -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/silent"


@asynccontextmanager
async def silent_server() -> AsyncIterator[SilentServer]:
    silent = SilentServer()
    server = await asyncio.start_server(silent._handle, "127.0.0.1", 0)
    silent.port = server.sockets[0].getsockname()[1]
    try:
        yield silent
    finally:
        server.close()
        for writer in silent._writers:
            writer.close()
        await server.wait_closed()
