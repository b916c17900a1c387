"""notify of a test's own: its API (one or more replicas) and its dispatcher as real processes.

They run on free ports, on the test broker and a database of their own, with
consumer groups of their own that read from now on
(tests/support/consumer_groups.py), trusting auth's stand-in
(tests/support/auth_stand_in.py, serving its JWKS from the test's event loop).
A test may kill them with SIGKILL and start them again without disturbing the
e2e platform or any other test. Everything is stopped by PID and the database
dropped on leaving.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from pymongo.asynchronous.database import AsyncDatabase

from libs.devstack import processes
from libs.devstack.config import REPO_ROOT
from libs.devstack.processes import ProcessSpec
from libs.devstack.secrets import dev_secrets
from libs.events.topics import CLIENTS
from libs.store import create_client
from services.notify.collections import CLIENTS as CLIENTS_COLLECTION

from .auth_stand_in import AuthStandIn, RelyingParty, client_registered
from .calls import bearer
from .consumer_groups import new_group_prefix, read_from_now
from .polling import eventually


@dataclass
class OwnNotify:
    """notify's processes under `directory`: API replicas (`api_urls`) and one dispatcher, sharing one database."""

    directory: Path
    auth: AuthStandIn
    kafka_bootstrap: str
    mongo_uri: str
    database: str
    env: dict[str, str]
    api_urls: list[str] = field(default_factory=list)
    _specs: dict[str, tuple[ProcessSpec, str]] = field(default_factory=dict)  # name -> (spec, its /readyz)

    def _spec(self, name: str, module: str, port_variable: str, metrics_variable: str,
              env_overrides: dict[str, str] | None = None) -> tuple[ProcessSpec, str]:
        if name not in self._specs:
            port = processes.free_port()
            env = {**self.env, port_variable: str(port), metrics_variable: str(processes.free_port()), **(env_overrides or {})}
            spec = ProcessSpec(name=name, argv=[sys.executable, "-m", module], marker=module, cwd=REPO_ROOT, env=env,
                               log_file=self.directory / f"{name}.log", pid_file=self.directory / f"{name}.pid")
            self._specs[name] = (spec, f"http://127.0.0.1:{port}")
        return self._specs[name]

    async def _start(self, spec: ProcessSpec, url: str) -> int:
        pid = processes.start(spec)

        async def ready():
            if not processes.is_alive(pid):
                raise AssertionError(f"{spec.name} exited at start:\n{spec.log_file.read_text()[-3000:]}")
            return await asyncio.to_thread(processes.http_ok, url + "/readyz")

        await eventually(ready, timeout_s=60, interval_s=0.1)
        return pid

    async def start_api(self, replica: int = 0, *, mongo_uri: str | None = None) -> int:
        """Start API replica `replica` (again, on the same port after a kill) and wait until it is ready; its PID.

        `mongo_uri`: where this replica finds the database, when not straight at it (through a proxy, say).
        """
        spec, url = self._spec(f"notify-{replica}", "services.notify", "HARBOUR_NOTIFY_PORT", "HARBOUR_NOTIFY_METRICS_PORT",
                               {"HARBOUR_MONGO_URI": mongo_uri} if mongo_uri else {})
        if url not in self.api_urls:
            self.api_urls.append(url)
        return await self._start(spec, url)

    async def start_dispatcher(self) -> int:
        spec, url = self._spec("notify-dispatcher", "services.notify.dispatcher", "HARBOUR_NOTIFY_DISPATCHER_PORT",
                               "HARBOUR_NOTIFY_DISPATCHER_METRICS_PORT")
        return await self._start(spec, url)

    def api_url(self, replica: int = 0) -> str:
        return self._specs[f"notify-{replica}"][1]

    async def kill_api(self, pid: int, replica: int = 0) -> None:
        """SIGKILL API replica `replica` — the process at `pid`, checked against its PID file — and wait until it is gone."""
        spec, _ = self._specs[f"notify-{replica}"]
        assert processes.running_pid(spec.pid_file, spec.marker) == pid, "not our notify process"
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not processes.is_alive(pid), timeout_s=10, interval_s=0.01)

    async def agency(self, name: str = "Inland Revenue Department") -> RelyingParty:
        """An agency as auth announces it on the broker, once notify's own consumer has recorded it."""
        rp = RelyingParty(f"rp-{uuid.uuid4().hex[:8]}", f"sector-{uuid.uuid4().hex[:6]}")
        event = client_registered(rp.client_id, sector=rp.sector, name=name, kind="agency")
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(CLIENTS.name, event.to_json(), key=rp.client_id.encode())
        finally:
            await producer.stop()
        async with self.db() as db:
            await eventually(lambda: db[CLIENTS_COLLECTION].find_one({"_id": rp.client_id}), timeout_s=30)
        return rp

    def token(self, rp: RelyingParty) -> dict[str, str]:
        """The agency's own client-credentials access token for notify."""
        return bearer(self.auth.relying_party_token(rp.client_id, "notify"))

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncDatabase]:
        client = create_client(self.mongo_uri)
        try:
            yield client[self.database]
        finally:
            await client.close()

    async def stop(self) -> None:
        for spec, _ in self._specs.values():
            await asyncio.to_thread(processes.stop, spec.pid_file, spec.marker)


@asynccontextmanager
async def own_notify(infra, auth: AuthStandIn) -> AsyncIterator[OwnNotify]:
    """notify's processes of this test (none started yet: `start_api`, `start_dispatcher`); stopped and dropped after."""
    directory = REPO_ROOT / ".dev" / f"own-notify-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True)
    database = f"test_own_notify_{uuid.uuid4().hex[:8]}"
    prefix = new_group_prefix()
    await read_from_now(infra.kafka_bootstrap, prefix)
    env: dict[str, Any] = {
        **dev_secrets(directory),
        "HARBOUR_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HARBOUR_MONGO_URI": infra.mongo_uri,
        "HARBOUR_NOTIFY_DB": database,
        "HARBOUR_KAFKA_GROUP_PREFIX": prefix,
        "HARBOUR_AUTH_URL": auth.url,
        "HARBOUR_ISSUER": auth.issuer,
        "HARBOUR_SANDBOX": "true",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    notify = OwnNotify(directory, auth, infra.kafka_bootstrap, infra.mongo_uri, database, env)
    try:
        yield notify
    finally:
        await notify.stop()
        client = create_client(infra.mongo_uri)
        try:
            await client.drop_database(database)
        finally:
            await client.close()
        shutil.rmtree(directory, ignore_errors=True)
