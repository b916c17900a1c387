"""auth in process: its app on a port of its own (the issuer names it), a FrozenClock, and the citizen app library.

The citizen app addresses auth directly (no gateway): the issuer is the
test server's own URL, so device-token audiences are what auth expects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from clients.citizen_app import CitizenApp, Profile
from libs.clock import FrozenClock
from libs.devstack.processes import free_port
from libs.store import create_client
from services.auth.app import create_app
from services.auth.callers import AUTH
from services.auth.context import Auth

from ...support.consumer_groups import read_from_now
from ...support.infrastructure import serving, stop_within
from ...support.people import identity, selfie
from ...support.polling import eventually


@dataclass
class AuthService:
    client: TestClient
    url: str

    @property
    def context(self) -> Auth:
        """The running service's context (the domain's view of it), for setting up what a test needs."""
        return self.client.server.app[AUTH]

    def citizen_app(self, tmp_path: Path, name: str = "phone") -> CitizenApp:
        return CitizenApp(Profile(gateway_url=self.url), tmp_path / f"{name}.json")

    async def enrolled(self, tmp_path: Path, **person) -> dict:
        """A sandbox self-registration (assurance `basic`): the enrolment answer with its activation code."""
        return await CitizenApp(Profile(gateway_url=self.url)).enrol(identity(**person), selfie())

    async def citizen(self, tmp_path: Path, name: str = "phone") -> CitizenApp:
        """An enrolled citizen with an activated device."""
        enrolment = await self.enrolled(tmp_path)
        app = self.citizen_app(tmp_path, name)
        await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
        return app


@pytest.fixture
def auth_variables() -> dict[str, str]:
    """More of auth's settings (HARBOUR_ names without the prefix) for a test module to give: override this fixture."""
    return {}


@pytest.fixture
async def auth_service(infra, service_settings, clock: FrozenClock, auth_variables) -> AsyncIterator[AuthService]:
    """auth under TestClient on the test broker and database, with the test's FrozenClock."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = service_settings("auth", ISSUER=url, **auth_variables)
    await read_from_now(settings.service.kafka_bootstrap, settings.service.kafka_group_prefix)
    client = await serving(create_app(settings, clock=clock), settings.service.shutdown_timeout_s, host="127.0.0.1", port=port)

    async def ready():
        return (await client.get("/readyz")).status == 200

    try:
        await eventually(ready, timeout_s=30, interval_s=0.05)
        yield AuthService(client, url)
    finally:
        await stop_within(client)
        mongo = create_client(infra.mongo_uri)
        try:
            await mongo.drop_database(settings.service.database)
        finally:
            await mongo.close()
