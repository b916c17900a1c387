"""The database in tests: a client that is always closed, sweeps of what services stored, and a server of a test's own."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import bson
from pymongo import monitoring

from libs.devstack import DevStack, StackConfig, processes
from libs.devstack.processes import ProcessSpec
from libs.store import create_client
from libs.store.monitoring import DATABASE_HEARTBEAT_FAILURES


class CommandCounter(monitoring.CommandListener):
    """How many `command` commands a client sent about `collection` (give it as the client's event listener)."""

    def __init__(self, command: str, collection: str) -> None:
        self.command, self.collection = command, collection
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == self.command and event.command.get(self.command) == self.collection:
            self.count += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


class CommandRecorder(monitoring.CommandListener):
    """The commands every client sends to one database while `recording` it: (command name, collection, command).

    Register it (`monitoring.register`) before the clients it should hear are made; a listener cannot be
    unregistered, so outside `recording` it keeps nothing.
    """

    def __init__(self) -> None:
        self.database: str | None = None
        self.seen: list[tuple[str, object, dict]] = []

    @contextmanager
    def recording(self, database: str) -> Iterator[list[tuple[str, object, dict]]]:
        self.seen, self.database = [], database
        try:
            yield self.seen
        finally:
            self.database = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.database is not None and event.database_name == self.database:
            self.seen.append((event.command_name, event.command.get(event.command_name), event.command))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@asynccontextmanager
async def mongo(uri: str) -> AsyncIterator:
    """A client of the test database, closed on leaving the block."""
    client = create_client(uri)
    try:
        yield client
    finally:
        await client.close()


async def all_documents(mongo_client, database: str) -> list[bytes]:
    """Every document of every collection of `database`, as raw BSON."""
    db = mongo_client[database]
    dumped = []
    for name in await db.list_collection_names():
        async for doc in db[name].find():
            dumped.append(bson.encode(doc))
    return dumped


async def raw_documents(platform, collections: dict[str, list[str]]) -> dict[str, list[bytes]]:
    """{"<service>.<collection>": every document of it as raw BSON}, for `{service: [collection, ...]}`."""
    async with mongo(platform.infra.mongo_uri) as client:
        return {f"{service}.{name}": [bson.encode(doc) async for doc in client[platform.database(service)][name].find()]
                for service, names in collections.items() for name in names}


async def service_documents(platform, service: str) -> list[bytes]:
    """Every document of every collection of one service's database on the platform, as raw BSON."""
    async with mongo(platform.infra.mongo_uri) as client:
        return await all_documents(client, platform.database(service))


async def platform_documents(platform) -> dict[str, list[bytes]]:
    """{database name: every document of it as raw BSON} for every database of the platform's services."""
    async with mongo(platform.infra.mongo_uri) as client:
        names = [n for n in await client.list_database_names() if n.startswith(platform.stack.config.db_prefix)]
        return {name: await all_documents(client, name) for name in names}


@dataclass
class OwnDatabase:
    """A MongoDB-protocol server of one test's own (a process on a free port), which the test may stall or stop."""

    uri: str
    pid: int
    spec: ProcessSpec

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """The server frozen (SIGSTOP) inside the block — alive, its sockets open, answering nothing — and
        resumed (SIGCONT) on leaving it, whatever happens inside."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)


@contextmanager
def database_of_its_own(folder: Path) -> Iterator[OwnDatabase]:
    """Start a database server under `folder` for one test, so stopping or stalling it disturbs no other test;
    stopped (by PID) on leaving."""
    stack = DevStack(StackConfig.free_ports(folder))
    spec = stack.mongo_spec()
    pid = processes.start(spec)
    try:
        processes.wait_until(lambda: processes.port_open("127.0.0.1", stack.config.mongo_port) or not processes.is_alive(pid),
                             timeout_s=60, what="the test's own database")
        yield OwnDatabase(stack.config.mongo_uri, pid, spec)
    finally:
        with suppress(ProcessLookupError):  # a test may have stopped it already
            os.kill(pid, signal.SIGCONT)  # a stopped process would not act on SIGTERM
        processes.stop(spec.pid_file, spec.marker)


def heartbeat_failures(service: str) -> float:
    """How many failed database heartbeats this process counted for `service` (libs/store/monitoring.py)."""
    return sum(sample.value for metric in DATABASE_HEARTBEAT_FAILURES.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["service"] == service)
