"""In-process service tests: a service's `create_app(settings)` under aiohttp's TestClient.

A test starts the services it needs against a real broker and database of
the service tests' own (`infra`, below), each with a database of its own, and moves a FrozenClock
(`clock`) past lifetimes instead of sleeping:

    async def test_an_unanswered_request_expires(start_service, clock):
        formfill = await start_service("formfill", clock=clock, FORMFILL_REQUEST_TTL_S="60")
        ...
        clock.advance(61)

Settings are the service's own (`FormfillSettings`, ...), read as in
production from the environment the dev stack would give the process (fresh
secrets, sandbox on, loopback callbacks allowed), with the broker, database
server and a fresh database name from `infra.settings(name)`.
Keyword arguments are more variables without the HARBOUR_ prefix
(`AUTH_URL=...` is HARBOUR_AUTH_URL). `service_settings(name, **variables)`
gives the settings alone, for a test that builds the app itself.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient

from libs.clock import Clock, FrozenClock
from libs.devstack import softhsm
from libs.devstack.secrets import dev_secrets
from libs.store import create_client

from ..support.consumer_groups import GROUPS, groups_under, new_group_prefix, read_from_now
from ..support.infrastructure import private_infra, serving, stop_within
from ..support.polling import eventually

# name -> (module of its create_app, its settings class)
SERVICES = {
    "auth": ("services.auth.app", "services.auth.settings:AuthSettings"),
    "formfill": ("services.formfill.app", "services.formfill.settings:FormfillSettings"),
    "notify": ("services.notify.app", "services.notify.settings:NotifySettings"),
    "notify-dispatcher": ("services.notify.dispatcher", "services.notify.settings:NotifySettings"),
    "signing": ("services.signing.app", "services.signing.settings:SigningSettings"),
    "gateway": ("services.gateway.app", "services.gateway.settings:GatewaySettings"),
}


def pytest_collection_modifyitems(items) -> None:
    """Every test under tests/service/ carries the `service` mark (`-m service` runs them alone)."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.service)


def _load(path: str):
    module, _, name = path.partition(":")
    loaded = __import__(module, fromlist=[name or "create_app"])
    return getattr(loaded, name or "create_app")


@pytest.fixture(scope="session")
def infra():
    """The service tests' own broker and database, never the e2e platform's nor `make up`'s.

    A service started here joins its consumer groups under the names the platform's processes use; joining a
    group that a live process holds stalls the local broker's rebalance (an in-process auth's start hung there
    once the e2e platform had run in the same session).
    """
    with private_infra("test-service") as infra:
        yield infra


@pytest.fixture(scope="session")
def service_secrets(tmp_path_factory) -> dict[str, str]:
    """The secrets the dev stack would generate (keys, sealing pairs, admin token, HSM PINs), once per session."""
    return dev_secrets(tmp_path_factory.mktemp("service-secrets"))


@pytest.fixture(scope="session")
def softhsm_conf(service_secrets, tmp_path_factory) -> str:
    """SoftHSM2's configuration with a token of this session's own, for signing (made on first use)."""
    conf = softhsm.ensure_token(tmp_path_factory.mktemp("softhsm"), label=service_secrets["HARBOUR_SIGNING_TOKEN_LABEL"],
                                so_pin=service_secrets["HARBOUR_SIGNING_SO_PIN"], pin=service_secrets["HARBOUR_SIGNING_HSM_PIN"])
    return str(conf)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that stands still until the test moves it (`clock.advance(seconds)`)."""
    return FrozenClock(datetime(2030, 1, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def service_settings(infra, service_secrets, request, monkeypatch) -> Callable:
    """service_settings(name, **variables) -> the service's settings, on the test infrastructure."""

    def settings(name: str, **variables: str):
        service = name.split("-")[0]  # the notify dispatcher reads notify's settings
        on_infra = infra.settings(service)  # the test broker and database, a database of its own
        prefix = f"HARBOUR_{service.upper()}"
        environment = {
            **service_secrets,
            "HARBOUR_KAFKA_BOOTSTRAP": on_infra.kafka_bootstrap,
            "HARBOUR_MONGO_URI": on_infra.mongo_uri,
            f"{prefix}_DB": on_infra.database,
            # TestServer listens where it likes; the internal metrics listeners on free ports.
            f"{prefix}_PORT": "0",
            f"{prefix}_METRICS_PORT": "0",
            "HARBOUR_NOTIFY_DISPATCHER_METRICS_PORT": "0",
            "HARBOUR_SANDBOX": "true",
            "HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "1",
            # Consumer groups of this copy's own (tests/support/consumer_groups.py).
            "HARBOUR_KAFKA_GROUP_PREFIX": new_group_prefix(),
            **{f"HARBOUR_{key}": str(value) for key, value in variables.items()},
        }
        if name == "signing":
            environment["HARBOUR_SIGNING_PKCS11_MODULE"] = softhsm.module_path()
            # The PKCS#11 module reads this when the service opens the token, not only now.
            monkeypatch.setenv("SOFTHSM2_CONF", request.getfixturevalue("softhsm_conf"))
        with monkeypatch.context() as patched:
            for key, value in environment.items():
                patched.setenv(key, value)
            return _load(SERVICES[name][1]).from_env()

    return settings


async def _until_ready(client: TestClient) -> None:
    async def ready():
        response = await client.get("/readyz")
        return response.status == 200 or None

    try:
        await eventually(ready, timeout_s=30, interval_s=0.05)
    except AssertionError:
        response = await client.get("/readyz")
        raise AssertionError(f"not ready within 30 s: {response.status} {await response.text()}") from None


@pytest.fixture
async def start_service(infra, service_settings) -> AsyncIterator[Callable]:
    """start_service(name, *, clock=None, ready=True, **variables) -> a started TestClient of the service.

    It returns once /readyz answers 200 (its revocation list read, say), as `make up` waits; `ready=False`
    returns at once. Everything started is stopped after the test, and its database dropped.
    """
    started: list[tuple[TestClient, str]] = []

    async def start(name: str, *, clock: Clock | None = None, ready: bool = True, **variables: str) -> TestClient:
        settings = service_settings(name, **variables)
        await read_from_now(settings.service.kafka_bootstrap, settings.service.kafka_group_prefix)
        create_app = _load(SERVICES[name][0])
        if clock is not None:
            if "clock" not in inspect.signature(create_app).parameters:
                raise TypeError(f"{SERVICES[name][0]}.create_app takes no clock= yet: add `*, clock: Clock | None = None`"
                                " and hand it to the service's context")
            app = create_app(settings, clock=clock)
        else:
            app = create_app(settings)
        client = await serving(app, settings.service.shutdown_timeout_s)
        started.append((client, settings.service))
        if ready:
            await _until_ready(client)
        return client

    yield start
    for client, _ in reversed(started):
        await stop_within(client)
    for _, service in started:
        # A group the fast-forward did not know of read every earlier test's events: name it in GROUPS.
        assert await groups_under(service.kafka_bootstrap, service.kafka_group_prefix) <= {
            service.kafka_group_prefix + group for group in GROUPS}
    if os.environ.get("HARBOUR_KEEP_TEST_DATABASES") != "1":
        mongo = create_client(infra.mongo_uri)
        try:
            for _, service in started:
                await mongo.drop_database(service.database)
        finally:
            await mongo.close()
