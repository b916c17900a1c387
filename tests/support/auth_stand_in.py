"""auth, played by the test, for in-process tests of the services that trust it (formfill, signing).

What such a service learns from auth is a JWKS (served here on a local
port), tokens signed with its key, and events. The stand-in mints relying
party and device tokens, builds the events auth would publish, hands them to
the service's own event handler (inside the service's transaction, as its
consumer would) or puts them on the broker for the service's own consumer
(`learn_through_broker`: its consumer groups are the test's own), reads
the prompts the service published from its outbox and unseals them with
auth's key, and signs decisions as the citizen's phone would.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec

from libs.approvals import ApprovalRequest, sign_decision, unseal_prompt
from libs.clock import Clock, SystemClock
from libs.crypto import seal
from libs.events import CloudEvent
from libs.events.consumer import PROCESSED_COLLECTION
from libs.events.outbox import OUTBOX_COLLECTION
from libs.events.topics import APPROVAL_DECIDED
from libs.tokens import ACCESS_TOKEN_TYP, DEVICE_AUDIENCE, generate_private_key, public_jwk, sign
from libs.tokens.dpop import make_proof, thumbprint

from .calls import bearer
from .polling import eventually

ISSUER = "https://id.harbour.test"


@dataclass
class AuthStandIn:
    """auth's signing key and JWKS; `url` once started (the service's HARBOUR_AUTH_URL)."""

    issuer: str = ISSUER
    key: ec.EllipticCurvePrivateKey = field(default_factory=generate_private_key)
    kid: str = field(default_factory=lambda: f"auth-{uuid.uuid4().hex[:8]}")
    server: TestServer | None = None

    async def start(self) -> str:
        async def jwks(_: web.Request) -> web.Response:
            return web.json_response({"keys": [{**public_jwk(self.key), "kid": self.kid, "use": "sig", "alg": "ES256"}]})

        app = web.Application()
        app.router.add_get("/oidc/jwks", jwks)
        self.server = TestServer(app)
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return str(self.server.make_url("")).rstrip("/")

    # -- tokens ---------------------------------------------------------------

    def _token(self, claims: dict[str, Any], lifetime_s: int = 300) -> str:
        now = int(time.time())
        return sign({"iss": self.issuer, "iat": now, "exp": now + lifetime_s, "jti": uuid.uuid4().hex, **claims}, self.key,
                    headers={"kid": self.kid, "typ": ACCESS_TOKEN_TYP})

    def relying_party_token(self, client_id: str, scope: str, *, sub: str | None = None) -> str:
        """A relying party's access token: for a logged-in citizen (`sub`), or its own (client credentials)."""
        return self._token({"aud": self.issuer, "sub": sub or client_id, "client_id": client_id, "scope": scope})

    def device_token(self, account_id: str, device_id: str, *, jkt: str | None = None) -> str:
        """A device token; with `jkt` bound to that key as auth's are (`cnf.jkt`: DPoP-only, libs/callers)."""
        return self._token({"aud": DEVICE_AUDIENCE, "sub": account_id, "device_id": device_id,
                            **({"cnf": {"jkt": jkt}} if jkt else {})})


@pytest.fixture
async def auth_stand_in() -> AsyncIterator[AuthStandIn]:
    """auth's stand-in, serving its JWKS for the test (import it into a conftest to use it)."""
    auth = AuthStandIn()
    await auth.start()
    yield auth
    await auth.close()


# -- auth's events ------------------------------------------------------------


def client_registered(client_id: str, *, sector: str, name: str = "Harbour Water", kind: str = "relying_party", **metadata: Any) -> CloudEvent:
    return CloudEvent(source="/auth", type="client.registered", subject=client_id,
                      data={"client_id": client_id, "client_name": name, "kind": kind, "sector": sector, **metadata})


def subject_assigned(sub: str, *, sector: str, account_id: str) -> CloudEvent:
    return CloudEvent(source="/auth", type="identity.subject_assigned", subject=sub,
                      data={"sub": sub, "sector": sector, "account_id": account_id})


def enrolled(account_id: str, *, assurance: str = "plus", state: str = "active", profile: dict[str, Any] | None = None,
             sealed_to: dict[str, Any] | None = None) -> CloudEvent:
    """identity.enrolled; with `profile`, the profile sealed to `sealed_to` (formfill's public sealing key)."""
    data: dict[str, Any] = {"account_id": account_id, "assurance": assurance, "state": state, "language": "en"}
    if profile is not None:
        assert sealed_to is not None, "a profile travels sealed to formfill's key"
        data["sealed_profile"] = seal(profile, sealed_to)
    return CloudEvent(source="/auth", type="identity.enrolled", subject=account_id, data=data)


def state_changed(account_id: str, *, was: str, to: str) -> CloudEvent:
    return CloudEvent(source="/auth", type="identity.state_changed", subject=account_id,
                      data={"account_id": account_id, "from": was, "to": to, "reason": "test"})


async def deliver(ctx: Any, handler: Callable[[Any], Callable], event: CloudEvent) -> None:
    """The event handed to the service's handler in one transaction of its own, as its consumer does."""
    handle = handler(ctx)
    await ctx.transaction(lambda session: handle(event, session))


# -- what the service published ----------------------------------------------


async def published(ctx: Any, event_type: str, subject: str | None = None) -> list[CloudEvent]:
    """Events of `event_type` (about `subject`) the service wrote to its outbox, oldest first."""
    query: dict[str, Any] = {"type": event_type}
    if subject is not None:
        query["key"] = subject
    docs = await ctx.db[OUTBOX_COLLECTION].find(query).sort("seq", 1).to_list()
    return [CloudEvent.from_json(doc["value"]) for doc in docs]


async def outbox_topics(ctx: Any, event_type: str) -> list[str]:
    return [doc["topic"] for doc in await ctx.db[OUTBOX_COLLECTION].find({"type": event_type}).sort("seq", 1).to_list()]


async def prompt(ctx: Any, approval_id: str, auth_sealing_key: dict[str, Any]) -> ApprovalRequest:
    """The prompt the service published for `approval_id`, opened as auth opens it."""
    [event] = await published(ctx, "approval.requested", approval_id)
    return unseal_prompt(event.data, auth_sealing_key)


@dataclass
class Phone:
    """A citizen's device: its id and key, and the decisions it signs (as auth then publishes them, on `clock`)."""

    account_id: str
    device_id: str = field(default_factory=lambda: f"dev-{uuid.uuid4().hex[:8]}")
    key: ec.EllipticCurvePrivateKey = field(default_factory=generate_private_key)
    clock: Clock = field(default_factory=SystemClock)

    def decided(self, request: ApprovalRequest, decision: str = "approve", *, selection: list[str] | None = None,
                digest: str | None = None, at: datetime | None = None, signed_at: datetime | None = None) -> CloudEvent:
        """approval.decided for `request`, signed over its digest (or over `digest`, to forge one).

        auth received it `at` (default: the clock's now; its `decided_at`, and the event's time); the phone signed it
        at `signed_at` (default `at`).
        """
        at = at or self.clock.now()
        signed_digest = digest or request.digest()
        jws = sign_decision(self.key, device_id=self.device_id, approval_id=request.approval_id, digest=signed_digest,
                            decision=decision, selection=selection, now=signed_at or at)  # type: ignore[arg-type]
        return CloudEvent(source="/auth", type="approval.decided", subject=request.approval_id, time=at, data={
            "approval_id": request.approval_id, "account_id": self.account_id,
            "requester": request.requester.model_dump(), "action": request.action, "decision": decision,
            "selection": selection, "digest": signed_digest, "device_id": self.device_id,
            "device_jwk": public_jwk(self.key), "decision_jws": jws, "decided_at": at.isoformat()})


# -- a service that trusts auth, under test ------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    sector: str


@dataclass(frozen=True)
class Citizen:
    account_id: str
    sub: str  # pairwise, at the relying party's sector
    phone: Phone


@dataclass
class ServiceUnderTest:
    """One service in process (tests/service/conftest.py start_service), the stand-in as its auth, a FrozenClock.

    A subclass names the service, its AppKey, event handler, scope and approval-id prefix.
    """

    http: Any  # aiohttp.test_utils.TestClient
    auth: AuthStandIn
    clock: Any  # libs.clock.FrozenClock
    secrets: dict[str, str]

    name: ClassVar[str]
    app_key: ClassVar[web.AppKey]
    handler: ClassVar[Callable[[Any], Callable]]
    scope: ClassVar[str]
    approval_prefix: ClassVar[str]

    @classmethod
    async def start(cls, start_service: Callable, auth: AuthStandIn, clock: Any, secrets: dict[str, str], **variables: str):
        """The service started by tests/service/conftest.py's `start_service`, trusting `auth` (its JWKS and issuer)."""
        http = await start_service(cls.name, clock=clock, AUTH_URL=auth.url, ISSUER=auth.issuer, **variables)
        return cls(http, auth, clock, secrets)

    @property
    def ctx(self) -> Any:
        return self.http.app[self.app_key]

    async def learn(self, event: CloudEvent) -> None:
        await deliver(self.ctx, type(self).handler, event)

    async def learn_through_broker(self, event: CloudEvent, topic: str = APPROVAL_DECIDED.name) -> None:
        """`event` put on `topic` of the test broker, as auth's relay would, then awaited until the service's own
        consumer has processed it (its `processed_events` marker is written in the handler's transaction)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.ctx.settings.service.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, event.to_json(), key=(event.subject or "").encode() or None)
        finally:
            await producer.stop()
        marker = {"_id": {"$regex": f":{re.escape(event.id)}$"}}
        await eventually(lambda: self.ctx.db[PROCESSED_COLLECTION].find_one(marker), timeout_s=30)

    async def relying_party(self, **metadata: Any) -> RelyingParty:
        rp = RelyingParty(f"rp-{uuid.uuid4().hex[:8]}", f"sector-{uuid.uuid4().hex[:6]}")
        await self.learn(client_registered(rp.client_id, sector=rp.sector, **metadata))
        return rp

    async def known_citizen(self, rp: RelyingParty, enrolment: CloudEvent) -> Citizen:
        """A citizen the service learnt of by `enrolment`, with a pairwise subject at `rp`'s sector."""
        account_id = enrolment.data["account_id"]
        citizen = Citizen(account_id, f"sub-{uuid.uuid4().hex[:8]}", Phone(account_id, clock=self.clock))
        await self.learn(enrolment)
        await self.learn(subject_assigned(citizen.sub, sector=rp.sector, account_id=account_id))
        return citizen

    def rp_token(self, rp: RelyingParty, *, sub: str | None = None) -> dict[str, str]:
        return bearer(self.auth.relying_party_token(rp.client_id, self.scope, sub=sub))

    def device_token(self, citizen: Citizen) -> dict[str, str]:
        return bearer(self.auth.device_token(citizen.account_id, citizen.phone.device_id))

    def bound_device_token(self, citizen: Citizen) -> str:
        """A device token bound to the citizen's phone key, as auth issues them (`cnf.jkt`)."""
        return self.auth.device_token(citizen.account_id, citizen.phone.device_id, jkt=thumbprint(public_jwk(citizen.phone.key)))

    def dpop(self, token: str, method: str, path: str, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
        """`Authorization: DPoP` with a proof by `key` for `method` at the issuer's URL + `path` (libs/callers' htu)."""
        return {"Authorization": f"DPoP {token}", "DPoP": make_proof(key, method, self.auth.issuer + path, access_token=token)}

    async def prompt(self, request_id: str) -> ApprovalRequest:
        """The prompt published for a request, as auth opens it."""
        return await prompt(self.ctx, f"{self.approval_prefix}-{request_id}", json.loads(self.secrets["HARBOUR_AUTH_SEALING_KEY"]))


def new_account_id() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"
