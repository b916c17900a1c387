"""A TCP proxy in front of the database that cuts a service's transaction at a chosen point, for crash tests.

The service is given the proxy's URI (`uri`, a direct connection). The proxy
relays MongoDB wire-protocol messages whole, and once armed it looks for
the transaction that inserts into `collection`: it recognises the insert
command's `lsid` (the session the transaction runs in), then the
`commitTransaction` of that session, and either

- `"commit"`: holds the commit back — the transaction is fully written but
  never committed, as if the service died just before committing; or
- `"reply"`: lets the commit through and holds back the database's answer
  to it — the transaction is committed, and the service, still waiting for
  the answer, has not answered its caller.

`held` is set then, and the test kills the service. Nothing is held before
`arm()` or after the cut; every other message passes unchanged.
"""

from __future__ import annotations

import asyncio
import re
import struct
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator
from typing import Literal
from urllib.parse import urlsplit

from libs.devstack import processes

_LSID = re.compile(rb"\x03lsid\x00.{4}\x05id\x00\x10\x00\x00\x00\x04(.{16})", re.S)
_COMMIT = b"commitTransaction\x00"
_HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode


def _insert_into(collection: str) -> bytes:
    name = collection.encode() + b"\x00"
    return b"\x02insert\x00" + struct.pack("<i", len(name)) + name


class CommitCutter:
    def __init__(self, target_uri: str, collection: str, cut: Literal["commit", "reply"]) -> None:
        target = urlsplit(target_uri)
        self._target = (target.hostname, target.port)
        self._insert = _insert_into(collection)
        self._cut = cut
        self._armed = False
        self._session: bytes | None = None
        self.held = asyncio.Event()
        self.port = processes.free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?retryWrites=false&directConnection=true"

    def arm(self) -> None:
        self._armed = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        # The requestID of a commit let through on this connection, whose answer the "reply" cut holds.
        commit_sent: list[int] = []

        def to_server(message: bytes) -> bool:
            if not self._armed or self.held.is_set():
                return True
            if self._session is None and self._insert in message and (found := _LSID.search(message)):
                self._session = found.group(1)
            if self._session is not None and _COMMIT in message and self._session in message:
                if self._cut == "commit":
                    self.held.set()
                    return False
                commit_sent.append(_HEADER.unpack_from(message)[1])
            return True

        def to_client(message: bytes) -> bool:
            if commit_sent and _HEADER.unpack_from(message)[2] == commit_sent[0] and not self.held.is_set():
                self.held.set()
                return False
            return True

        try:
            await asyncio.gather(self._relay(client_reader, server_writer, to_server),
                                 self._relay(server_reader, client_writer, to_client))
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
                self._writers.discard(writer)

    @staticmethod
    async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, forward) -> None:
        """Whole messages from `reader` to `writer` while `forward(message)`. From the first one refused on, nothing
        more is forwarded but the connection stays open (a closed one would have the driver retry the commit
        elsewhere): the other end waits, as for a peer that died."""
        buffer = bytearray()
        holding = False
        try:
            while data := await reader.read(1 << 16):
                if holding:
                    continue
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= (length := int.from_bytes(buffer[:4], "little")):
                    message = bytes(buffer[:length])
                    del buffer[:length]
                    if not forward(message):
                        holding = True
                        break
                    writer.write(message)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def commit_cutter(target_uri: str, collection: str, cut: Literal["commit", "reply"]) -> AsyncIterator[CommitCutter]:
    cutter = CommitCutter(target_uri, collection, cut)
    await cutter.start()
    try:
        yield cutter
    finally:
        await cutter.close()
