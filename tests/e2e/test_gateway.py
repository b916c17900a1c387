"""The gateway in front of the real services: edge authentication, rate limits, failing upstreams."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import jwt as pyjwt
import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from libs.crypto import Keyring
from libs.devstack import processes
from libs.service import ServiceSettings
from libs.tokens.dpop import make_proof
from libs.tokens.keystore import KeyStore
from services.gateway.app import create_app
from services.gateway.settings import UPSTREAMS, GatewaySettings

from ..support.calls import device_auth, refusal
from ..support.citizens import enrolled_app
from ..support.database import mongo
from ..support.oidc import claims_of, login, register, token_request
from ..support.polling import eventually

pytestmark = pytest.mark.e2e



async def expired_copy(platform, claims: dict) -> str:
    """The same token, expired an hour ago, signed with auth's real current key (read as auth would)."""
    async with mongo(platform.infra.mongo_uri) as client:
        keyring = Keyring.from_env_value(platform.env()["HARBOUR_AUTH_KEK"])
        key = await KeyStore(client, client[platform.database("auth")], keyring, max_token_lifetime_s=600).current()
    now = int(time.time())
    return pyjwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, key.private_key, algorithm="ES256",
                        headers={"kid": key.kid, "typ": "at+jwt"})


def upstream_saw(platform, service: str, request_id: str) -> bool:
    log = (platform.stack.log_dir / f"{service}.log").read_text()
    return any(line.startswith("{") and json.loads(line).get("request_id") == request_id for line in log.splitlines())


async def test_bad_tokens_are_stopped_at_the_edge(platform, kiosk, tmp_path):
    citizen = await enrolled_app(platform, kiosk, tmp_path)
    good = await citizen.device_token()
    claims = claims_of(good)
    header = pyjwt.get_unverified_header(good)
    intruder = ec.generate_private_key(ec.SECP256R1())
    attacks = {
        "forged": pyjwt.encode(claims, intruder, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"}),
        "unknown-kid": pyjwt.encode(claims, intruder, algorithm="ES256", headers={"kid": "nope", "typ": "at+jwt"}),
        "expired": await expired_copy(platform, claims),
        "bad-signature": good.rsplit(".", 1)[0] + ".AAAA",
        "wrong-audience": None,
        "none": pyjwt.encode(claims, None, algorithm="none"),
    }
    rp = register(platform)
    # An RP's access token is for the API audience, not for citizens' devices.
    citizen_rp = await enrolled_app(platform, kiosk, tmp_path, "rp-citizen")
    metadata = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()
    tokens, _ = await login(platform, metadata, rp, citizen_rp)
    attacks["wrong-audience"] = tokens["access_token"]
    for name, token in attacks.items():
        request_id = f"edge-{name}-{uuid.uuid4().hex[:8]}"
        response = requests.get(platform.gateway + "/v1/approvals", headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id}, timeout=10)
        assert response.status_code == 401, name
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="harbour-id", error="invalid_token"'), name
        assert not upstream_saw(platform, "auth", request_id), f"{name} reached auth"
    missing = requests.get(platform.gateway + "/v1/approvals", timeout=10)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    request_id = f"edge-good-{uuid.uuid4().hex[:8]}"
    ok = requests.get(platform.gateway + "/v1/approvals", timeout=10, headers={
        **device_auth(citizen, good, "GET", platform.gateway + "/v1/approvals"), "X-Request-Id": request_id})
    assert ok.status_code == 200
    assert upstream_saw(platform, "auth", request_id)


async def test_a_stolen_device_token_is_refused_without_the_device_key(platform, kiosk, tmp_path):
    """A device token is DPoP-bound to the phone's key (`cnf.jkt`): copied off the phone (a log, a proxy, malware
    reading memory) it is refused at the edge, before any upstream sees it, and by a service called directly."""
    phone = await enrolled_app(platform, kiosk, tmp_path, "phone")
    stolen = await phone.device_token()
    assert claims_of(stolen)["cnf"]["jkt"]
    thief = ec.generate_private_key(ec.SECP256R1())
    notify = platform.stack.config.service_url("notify")
    for service, base in (("auth", platform.gateway), ("notify", platform.gateway), ("notify", notify)):
        path = "/v1/approvals" if service == "auth" else "/v1/inbox"
        url, issuer_url = base + path, platform.gateway + path  # htu: the issuer's URL + the path, at the edge or not
        thiefs_proof = make_proof(thief, "GET", issuer_url, access_token=stolen)
        for how, headers, error in (
            ("bearer", {"Authorization": f"Bearer {stolen}"}, "invalid_token"),
            ("no proof", {"Authorization": f"DPoP {stolen}"}, "invalid_dpop_proof"),
            ("the thief's key", {"Authorization": f"DPoP {stolen}", "DPoP": thiefs_proof}, "invalid_dpop_proof"),
        ):
            request_id = f"stolen-{uuid.uuid4().hex[:8]}"
            response = requests.get(url, headers={**headers, "X-Request-Id": request_id}, timeout=10)
            assert response.status_code == 401, (url, how, response.text)
            assert response.headers["Content-Type"].startswith("application/problem+json")
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith("DPoP ") and f'error="{error}"' in challenge, (url, how, challenge)
            if base == platform.gateway:
                assert not upstream_saw(platform, service, request_id), f"{how} reached {service}"
        # The phone itself, with its key: through.
        owner = requests.get(url, headers=device_auth(phone, stolen, "GET", url), timeout=10)
        assert owner.status_code == 200, (url, owner.text)


def test_a_missing_scope_is_403_at_the_edge(platform):
    metadata = requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).json()
    agency = register(platform, client_name="Parks Department", kind="agency", redirect_uris=[], scope="notify sign")
    without_notify = token_request(metadata, agency, grant_type="client_credentials", scope="sign").json()["access_token"]
    request_id = f"scope-{uuid.uuid4().hex[:8]}"
    response = requests.post(platform.gateway + "/v1/notifications", json={},
                             headers={"Authorization": f"Bearer {without_notify}", "X-Request-Id": request_id}, timeout=10)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert not upstream_saw(platform, "notify", request_id)
    with_notify = token_request(metadata, agency, grant_type="client_credentials", scope="notify").json()["access_token"]
    passed = requests.post(platform.gateway + "/v1/notifications", json={}, headers={"Authorization": f"Bearer {with_notify}"}, timeout=10)
    refusal(passed, 422, "validation-failed")  # the edge let it through; notify answers for itself (an empty body)


async def test_rate_limits_answer_429_with_retry_after(platform):
    settings = GatewaySettings(
        service=ServiceSettings(service="gateway"),
        upstreams={name: platform.stack.config.service_url(name) for name in UPSTREAMS},
        issuer=platform.gateway, rate_per_ip=5, burst_per_ip=10,
    )
    async with TestClient(TestServer(create_app(settings))) as gateway:
        statuses = []
        for _ in range(30):  # a bounded burst, far above 10 + 5/s
            response = await gateway.get("/.well-known/openid-configuration")
            statuses.append(response.status)
            if response.status == 429:
                limited = response
                body = await response.json(content_type="application/problem+json")
        assert statuses[:10] == [200] * 10
        assert statuses.count(429) >= 15
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["RateLimit-Limit"] == "10" and limited.headers["RateLimit-Remaining"] == "0"
        assert body["status"] == 429
        # Health endpoints are never rate limited.
        assert (await gateway.get("/healthz")).status == 200


async def test_a_killed_upstream_gives_503_and_recovers_without_restarting_the_gateway(platform):
    spec = platform.stack.service_spec("signing")
    url = platform.gateway + "/v1/signing/ca"
    before = requests.get(url, timeout=10).status_code
    assert before != 503
    assert processes.stop(spec.pid_file, spec.marker)
    try:
        down = requests.get(url, timeout=10)
        assert down.status_code == 503
        assert down.headers["Content-Type"].startswith("application/problem+json")
        assert down.json()["upstream"] == "signing" and "Retry-After" in down.headers
        # The gateway stays ready (its readiness is its own) and reports the dead upstream.
        ready = requests.get(platform.gateway + "/readyz", timeout=10)
        assert ready.status_code == 200 and "signing" not in ready.json()["checks"]
        await eventually(lambda: requests.get(platform.gateway + "/readyz", timeout=10).json()["upstreams"]["signing"] != "ok",
                         timeout_s=10)
        assert requests.get(platform.gateway + "/.well-known/openid-configuration", timeout=10).status_code == 200
    finally:
        processes.start(spec)

    def recovered() -> bool:
        ready = requests.get(platform.gateway + "/readyz", timeout=10)
        return requests.get(url, timeout=10).status_code == before and ready.json()["upstreams"]["signing"] == "ok"

    await eventually(recovered, timeout_s=60, interval_s=0.5)


def raw_chunked_post(base_url: str, path: str, chunks: list[bytes], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST with Transfer-Encoding: chunked and no Content-Length, over a plain socket (no client rewrites it)."""
    url = urlsplit(base_url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", "Transfer-Encoding: chunked", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may answer and close before the whole body is sent; its answer is still there
        raw = b""
        while data := sock.recv(65536):
            raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    response_headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    if response_headers.get("transfer-encoding") == "chunked":
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return int(status_line.split()[1]), response_headers, body


def test_a_chunked_body_over_the_route_limit_is_413_and_never_reaches_the_upstream(platform, tmp_path):
    # /v1/signing/tsa takes at most 64 KiB; 100 KiB arrives in 10 KiB chunks with no Content-Length.
    request_id = f"chunked-big-{uuid.uuid4().hex[:8]}"
    status, headers, body = raw_chunked_post(platform.gateway, "/v1/signing/tsa", [b"\x30" * 10240] * 10,
                                             {"Content-Type": "application/timestamp-query", "X-Request-Id": request_id})
    assert status == 413, body
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 413 and json.loads(body)["type"].endswith("/payload-too-large")
    assert not upstream_saw(platform, "signing", request_id)
    # Under the limit, a chunked body still goes through: an RFC 3161 query in three pieces gets its timestamp.
    (tmp_path / "data.bin").write_bytes(uuid.uuid4().bytes)
    query = subprocess.run(["openssl", "ts", "-query", "-data", str(tmp_path / "data.bin"), "-sha256", "-cert"],
                           capture_output=True, check=True).stdout
    pieces = [query[:10], query[10:30], query[30:]]
    status, headers, body = raw_chunked_post(platform.gateway, "/v1/signing/tsa", pieces,
                                             {"Content-Type": "application/timestamp-query"})
    assert status == 200 and headers["content-type"] == "application/timestamp-reply", body


async def test_wrong_secret_requests_naming_a_client_do_not_drain_its_rate_limit_bucket(platform):
    agency = register(platform, client_name="Harbour Parks Office", kind="agency", redirect_uris=[], scope="notify")
    settings = GatewaySettings(
        service=ServiceSettings(service="gateway", kafka_bootstrap=platform.infra.kafka_bootstrap, mongo_uri=platform.infra.mongo_uri),
        upstreams={name: platform.stack.config.service_url(name) for name in UPSTREAMS},
        issuer=platform.gateway, burst_per_client=3, rate_per_client=0.01,
        # The test client is 127.0.0.1 for everyone: as a trusted proxy, its X-Forwarded-For tells callers apart.
        trusted_proxies=("127.0.0.1/32",),
    )
    form = {"grant_type": "client_credentials", "scope": "notify"}

    def basic(secret: str) -> str:
        return "Basic " + base64.b64encode(f"{agency['client_id']}:{secret}".encode()).decode()

    async with TestClient(TestServer(create_app(settings))) as gateway:
        attacker = {"Authorization": basic("not-the-secret"), "X-Forwarded-For": "203.0.113.9"}
        statuses = [(await gateway.post("/oidc/token", data=form, headers=attacker)).status for _ in range(8)]
        assert statuses[:3] == [401] * 3 and statuses[3:] == [429] * 5, statuses  # the attacker's own bucket ran dry
        # The real client, from its own address and with its secret, still has its whole bucket.
        owner = {"Authorization": basic(agency["client_secret"]), "X-Forwarded-For": "198.51.100.7"}
        for _ in range(3):
            response = await gateway.post("/oidc/token", data=form, headers=owner)
            assert response.status == 200, await response.text()
