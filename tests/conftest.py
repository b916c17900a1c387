"""Shared fixtures: the real local broker and database for integration and end-to-end tests.

`infra` reuses the stack `make up` left running (its broker and database)
or starts a private one on free ports under `.dev/`, and stops it by PID at
the end of the session. Tests isolate themselves with unique database and
topic names, so they never disturb a developer's data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass

import pytest

from libs.devstack import DevStack, StackConfig
from libs.devstack.config import REPO_ROOT

from .support.failure_logs import warnings_since
from .support.infrastructure import Infra, shared_or_private_infra


# What the test platform's auth vouches for in /.well-known/assetlinks.json and apple-app-site-association.
APP_CERT_SHA256 = ":".join(["A5"] * 16 + ["0F"] * 16)
APPLE_APP_ID = "HARBOURID1.hk.harbourid.citizen"


@pytest.fixture(scope="session")
def infra():
    with shared_or_private_infra() as infra:
        yield infra


@dataclass(frozen=True)
class Platform:
    """The five services running as processes against the test infrastructure."""

    stack: DevStack
    infra: Infra

    @property
    def gateway(self) -> str:
        return self.stack.config.service_url("gateway")

    def env(self) -> dict[str, str]:
        """The environment of the services, for running their commands (admin CLI...)."""
        return {**os.environ, **self.stack.config.service_env()}

    def database(self, service: str) -> str:
        return f"{self.stack.config.db_prefix}{service}"


@pytest.fixture(scope="session")
def platform(infra):
    """All services as real processes on free ports, each with a database of its own for this run."""
    run_dir = REPO_ROOT / ".dev" / f"test-platform-{os.getpid()}"
    config = StackConfig(
        dev_dir=run_dir,
        kafka_port=int(infra.kafka_bootstrap.rsplit(":", 1)[1]),
        mongo_port=int(infra.mongo_uri.split(":")[2].split("/")[0]),
        db_prefix=f"t{uuid.uuid4().hex[:6]}_",
        # Every test request comes from 127.0.0.1: the per-address limit must not throttle the suite.
        # (Rate limiting itself is tested on a gateway of its own with low limits.)
        extra_env={"HARBOUR_GATEWAY_RATE_PER_IP": "5000", "HARBOUR_GATEWAY_BURST_PER_IP": "10000",
                   "HARBOUR_GATEWAY_RATE_PER_CLIENT": "5000", "HARBOUR_GATEWAY_BURST_PER_CLIENT": "10000",
                   # Short enough that a test can watch an unread release expire.
                   "HARBOUR_FORMFILL_RESULT_TTL_S": "12",
                   # A chunk left `sending` by a killed dispatcher is swept up sooner (re-dispatching is idempotent).
                   "HARBOUR_NOTIFY_STALE_AFTER_S": "5",
                   # Batches in chunks of 100 (500 in production): the crash test's 1,000 recipients are ten chunks,
                   # so its kill lands between chunks.
                   "HARBOUR_NOTIFY_CHUNK_SIZE": "100",
                   # Every request's access-log line (1 in 100 successful ones by default): tests find whether a
                   # request reached a service by its request id in that service's log (test_gateway.py).
                   "HARBOUR_ACCESS_LOG_SAMPLE": "1",
                   # The citizen app's identities for https app links (tests/e2e/test_app_links.py reads them back).
                   "HARBOUR_AUTH_ANDROID_CERT_SHA256": APP_CERT_SHA256, "HARBOUR_AUTH_APPLE_APP_IDS": APPLE_APP_ID},
    )
    ports = StackConfig.free_ports(run_dir)
    config.service_ports, config.worker_ports, config.metrics_ports = ports.service_ports, ports.worker_ports, ports.metrics_ports
    config.smtp_port = ports.smtp_port  # this platform's own SMTP server (notify's e-mails land in config.maildir)
    stack = DevStack(config)
    try:
        stack.up_services()
        yield Platform(stack, infra)
    finally:
        stack.down_services()
        shutil.rmtree(run_dir, ignore_errors=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on the platform shows what the platform's processes warned about meanwhile (failure_logs.py)."""
    outcome = yield
    report = outcome.get_result()
    platform = getattr(item, "funcargs", {}).get("platform")
    if report.failed and isinstance(platform, Platform):
        lines = warnings_since(platform.stack.log_dir, call.start - 1.0)
        if lines:
            report.sections.append(("platform warnings and errors meanwhile", "\n".join(lines)))
