"""Production mode's start-up check (libs/service/production.py) as pure logic; tests/e2e/test_production_mode.py runs
it in real processes."""

from __future__ import annotations

import json
import os

import pytest

from libs.devstack.secrets import dev_secrets
from libs.service.production import ProductionRefused, production_refusals
from libs.service.settings import ServiceSettings

from ..support.production import ISSUER, published_dev_secrets

PUBLISHED = published_dev_secrets()


@pytest.fixture
def fit(tmp_path) -> dict[str, str]:
    """An environment fit for production: secrets nobody else knows (generated as the dev stack does), an https issuer."""
    return {**dev_secrets(tmp_path), "HARBOUR_SANDBOX": "false", "HARBOUR_ISSUER": ISSUER}


def test_secrets_of_its_own_and_an_https_issuer_pass(fit):
    assert production_refusals(fit) == {}


@pytest.mark.parametrize("variable", sorted(PUBLISHED))
def test_every_secret_the_development_cluster_publishes_is_refused(fit, variable):
    refusals = production_refusals({**fit, variable: PUBLISHED[variable]})
    assert list(refusals) == [variable]
    assert PUBLISHED[variable] not in refusals[variable]


@pytest.mark.parametrize("variable", ["HARBOUR_AUTH_SEALING_PUBLIC_JWK", "HARBOUR_FORMFILL_SEALING_PUBLIC_JWK"])
def test_a_published_key_is_recognised_however_its_jwk_is_written(fit, variable):
    jwk = json.loads(PUBLISHED[variable])
    rewritten = json.dumps(dict(reversed(list(jwk.items()))), indent=2)
    assert list(production_refusals({**fit, variable: rewritten})) == [variable]


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_loopback_callbacks_are_refused(fit, value):
    assert list(production_refusals({**fit, "HARBOUR_OUTBOUND_ALLOW_LOOPBACK": value})) == ["HARBOUR_OUTBOUND_ALLOW_LOOPBACK"]
    assert production_refusals({**fit, "HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "false"}) == {}


def test_a_cap_on_kafka_retention_is_refused(fit):
    # The local broker's workaround: in production a consumer away longer than the cap would lose events.
    assert list(production_refusals({**fit, "HARBOUR_KAFKA_RETENTION_CAP_MS": "300000"})) == ["HARBOUR_KAFKA_RETENTION_CAP_MS"]
    assert production_refusals({**fit, "HARBOUR_KAFKA_RETENTION_CAP_MS": "0"}) == {}


@pytest.mark.parametrize("issuer", [None, "http://127.0.0.1:8000", "http://id.harbour-id.example"])
def test_an_issuer_that_is_not_https_is_refused(fit, issuer):
    environment = {k: v for k, v in fit.items() if k != "HARBOUR_ISSUER"}
    if issuer is not None:
        environment["HARBOUR_ISSUER"] = issuer
    assert list(production_refusals(environment)) == ["HARBOUR_ISSUER"]


def _settings(monkeypatch, environment: dict[str, str]) -> ServiceSettings:
    for key in [k for k in os.environ if k.startswith("HARBOUR_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    return ServiceSettings.from_env("auth")


def test_every_process_checks_when_it_reads_its_settings_and_the_sandbox_allows_development_configuration(fit, monkeypatch):
    development = {"HARBOUR_OUTBOUND_ALLOW_LOOPBACK": "1", "HARBOUR_ADMIN_TOKEN": PUBLISHED["HARBOUR_ADMIN_TOKEN"]}
    assert _settings(monkeypatch, fit).sandbox is False
    with pytest.raises(ProductionRefused) as refused:
        _settings(monkeypatch, {**fit, **development})
    assert set(refused.value.variables) == set(development)
    assert PUBLISHED["HARBOUR_ADMIN_TOKEN"] not in str(refused.value)
    for sandbox in ("true", "1"):
        assert _settings(monkeypatch, {**fit, **development, "HARBOUR_SANDBOX": sandbox, "HARBOUR_ISSUER": "http://127.0.0.1:8000"}).sandbox
    # Anything but a true value is production mode (a typo never opens the sandbox).
    with pytest.raises(ProductionRefused):
        _settings(monkeypatch, {**fit, **development, "HARBOUR_SANDBOX": "ture"})
