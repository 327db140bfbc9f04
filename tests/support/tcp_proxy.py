"""A TCP proxy in front of PostgreSQL for failure injection (as asyncpg's own tests do).

It can cut every open connection, refuse new ones and accept them again, turn into a black hole
(every byte dropped both ways, sockets left open: to the client the server hangs), and it can
drop PostgreSQL NotificationResponse messages on their way to the client, which is what a
transaction-mode pooler looks like to a LISTENing client (LISTEN "works", nothing ever arrives).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

_NEGOTIATION_CODES = {80877103, 80877104}  # SSLRequest, GSSENCRequest: answered with one byte


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, drop_notifications: bool = False):
        self.target_host = target_host
        self.target_port = target_port
        self.drop_notifications = drop_notifications
        self.refusing = False
        self.black_hole = False  # drop every byte both ways; the streams cannot recover from it
        self.notifications_dropped = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._connecting: set[asyncio.StreamWriter] = set()  # accepted, upstream not yet open
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.accepted = 0
        self.database = "postgres"  # the database `dsn()` names by default

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def dsn(self, database: str | None = None, user: str = "postgres") -> str:
        name = database or self.database
        return f"postgresql://{user}@127.0.0.1:{self.port}/{name}?sslmode=disable"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self) -> int:
        """Abort every proxied connection (both sides see a reset), including those still
        waiting for their upstream connection; returns how many."""
        pairs, connecting = list(self._pairs), list(self._connecting)
        for client, upstream in pairs:
            for writer in (client, upstream):
                writer.transport.abort()
        for client in connecting:
            client.transport.abort()
        self._pairs.clear()
        self._connecting.clear()
        return len(pairs) + len(connecting)

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def refuse(self) -> None:
        self.refusing = True

    def restore(self) -> None:
        self.refusing = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        self._connecting.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        finally:
            self._connecting.discard(writer)
        if writer.transport.is_closing():  # cut while its upstream connection was being opened
            up_writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        negotiation = [0]
        task_up = asyncio.ensure_future(self._client_to_server(reader, up_writer, negotiation))
        task_down = asyncio.ensure_future(self._server_to_client(up_reader, writer, negotiation))
        for task in (task_up, task_down):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait({task_up, task_down}, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.transport.abort()
        self._pairs.discard(pair)

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, negotiation: list[int]
    ) -> None:
        first = True
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                if first:
                    head = await reader.readexactly(8)
                    length, code = struct.unpack("!ii", head)
                    rest = await reader.readexactly(length - 8)
                    if code in _NEGOTIATION_CODES:
                        negotiation[0] += 1
                    else:
                        first = False
                    if not self.black_hole:
                        writer.write(head + rest)
                else:
                    data = await reader.read(65536)
                    if not data:
                        return
                    if not self.black_hole:
                        writer.write(data)
                await writer.drain()

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, negotiation: list[int]
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                kind = await reader.readexactly(1)
                if negotiation[0] > 0:  # the one-byte answer to SSLRequest / GSSENCRequest
                    negotiation[0] -= 1
                    if not self.black_hole:
                        writer.write(kind)
                    await writer.drain()
                    if kind != b"N":
                        break  # encrypted from here on: pass bytes through unparsed
                    continue
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                body = await reader.readexactly(length - 4)
                if kind == b"A" and self.drop_notifications:
                    self.notifications_dropped += 1
                    continue
                if not self.black_hole:
                    writer.write(kind + struct.pack("!i", length) + body)
                await writer.drain()
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                if not self.black_hole:
                    writer.write(data)
                await writer.drain()
