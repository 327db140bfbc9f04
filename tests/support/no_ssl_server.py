"""A TCP server that answers PostgreSQL's SSLRequest with 'N', as a server without SSL does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


@asynccontextmanager
async def no_ssl_server() -> AsyncIterator[int]:
    """Its port; every connection gets 'N' to an SSLRequest, then is closed."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(8) == SSL_REQUEST:
            writer.write(b"N")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
