"""Chaos: the steady workload through the gateway, one fault at a time, then conservation checked end to end.

    .venv/bin/python bench/chaos.py [--smoke] [--faults "kill auth,kill broker"] [--budget-s 900] [--keep]
    make chaos

Starts its own private stack on free ports under .dev/chaos-*/ (never the one
`make up` runs), loopback only, and stops every process it started by PID.
Four citizens are enrolled at a kiosk with activated phones (the reference
citizen app library, driven in process). Then, for each fault in turn, a
phase of its own with a relying party of its own (logins, form fills,
signatures and notifications all on one client, so its agency topic holds
exactly that phase's events):

1. the workload runs through the gateway at a modest, steady rate — code +
   PKCE logins approved on the phone (and the code redeemed), anonymous
   form-fill requests claimed and approved, signatures of a hash claimed and
   approved, single notifications and a small batch (one per citizen), each
   with an identifier the check finds again (the login's transaction, the
   request ids, the notification's `reference`, the job id);
2. the fault: SIGKILL of one process (auth, formfill, notify, signing, the
   notify dispatcher, the gateway, the broker, the database), down for a
   couple of seconds, then started again the way `make up` does it
   (`DevStack.up()`: whatever is not running); or SIGSTOP of the database for
   10 s, then SIGCONT. Recovery: seconds from the restart (or the SIGCONT)
   until every process's `/readyz` answers 200;
3. the workload runs on, then stops (journeys in flight finish: every step
   retries connection errors, 429 and 5xx for up to 45 s, as a phone or a
   relying party would; a notification or batch is retried with the same
   `Idempotency-Key`);
4. settle (bounded): until no outbox holds a pending event, no relay has an
   acknowledged event still to read back (`harbour_outbox_awaiting_read_back`)
   and what was accepted reached its final state;
5. conservation, from the databases and the topics themselves:
   - every login auth recorded as approved issued exactly one authorization
     code, and the phase's agency topic holds exactly as many
     `login.succeeded` as there are approved logins;
   - every form fill and signature auth recorded as approved is `approved`
     (one consent receipt) or `signed` in formfill's or signing's database,
     with exactly one `consent.granted` / `signature.completed` naming it on
     the agency topic; a decision the phone saw accepted must be approved in
     auth;
   - every notification notify accepted (by reference, single or batch) is
     `delivered`, once: one notification per reference, one inbox item, one
     `notification.status_changed` listing it as delivered;
   - every event an outbox of the phase marked sent is on its topic exactly
     once (every topic read to its end with a throwaway consumer), and none
     is left pending.

The table (markdown) gives per fault: HTTP requests sent, answered 2xx,
refused by status code (`conn`: connection refused or reset; `timeout`),
work accepted (logins, form fills and signatures approved on the phone,
notifications accepted — a batch counts its recipients), lost and
duplicated (work + events), and seconds to recover. Polls for a prompt that
has not reached the phone yet (404) are not counted. Every phase's details —
each loss or duplicate by id, journeys given up, answers no caller should
see (500) — go to .dev/chaos-report.txt, the processes' logs to
.dev/chaos-logs/ (--keep keeps the whole stack folder, data included). Exit
status 0 only if nothing was lost or duplicated and every recovery took at
most 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import support  # noqa: E402
from clients.citizen_app import CitizenApp, Profile  # noqa: E402
from clients.citizen_app.app import FORMFILL_LINK, SIGN_LINK, AppError  # noqa: E402
from libs.devstack import DevStack, StackConfig, processes  # noqa: E402
from libs.devstack.config import REPO_ROOT, SERVICES, WORKERS  # noqa: E402
from libs.store import create_client  # noqa: E402
from tests.support.oidc import REDIRECT, app_link_of, authorize_url, claims_of  # noqa: E402
from tests.support.people import identity, selfie  # noqa: E402

CITIZENS = 4
# Every phase's client shares one pairwise sector: a citizen's `sub` is the same at all of them, so notify can
# address the phase's agency by the subs learnt once at setup.
SECTOR_URI = "http://127.0.0.1:8765/chaos-sector.json"
FIELDS = ["name_en", "email"]
TEMPLATE = {
    "name": "Chaos", "placeholders": ["n"],
    "content": {"en": {"subject": "Chaos {{ n }}", "body": "Message {{ n }}."},
                "zh-HK": {"subject": "混沌 {{ n }}", "body": "訊息 {{ n }}。"}},
}
# Seconds between the starts of two journeys of a lane (a slow journey delays the next one, never overlaps it).
LANES = {"login": 2.0, "formfill": 2.0, "sign": 3.0, "notify": 1.0, "batch": 6.0}
STEP_PATIENCE_S = 45.0    # how long one step retries connection errors, 429 and 5xx before the journey gives up
PROMPT_PATIENCE_S = 45.0  # how long the phone waits for a claimed request's prompt to arrive
DOWN_S = 2.0              # a killed process stays down this long before it is started again
STALL_S = 10.0            # the database's SIGSTOP
READY_LIMIT_S = 120.0     # recovery beyond this is reported as "not ready"
DRAIN_S = 60.0            # journeys in flight when the workload stops
SETTLE_S = 120.0          # outboxes empty and accepted work final (a killed process's open transaction holds its
                          # locks until the database drops it: 15 s on make up's stack)
FINAL = {"formfill": "approved", "sign": "signed"}
DELIVERED = {"delivered", "read"}
REPORT = REPO_ROOT / ".dev" / "chaos-report.txt"  # every phase's details in full, appended phase by phase
LOGS = REPO_ROOT / ".dev" / "chaos-logs"  # the last run's process logs


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# -- HTTP with a tally -------------------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    refused: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)  # 500s and other answers no caller should see, with what they said

    def record(self, outcome: int | str, what: str = "") -> None:
        self.sent += 1
        if isinstance(outcome, int) and outcome < 400:
            self.ok += 1
        else:
            self.refused[str(outcome)] += 1
        if isinstance(outcome, int) and outcome >= 500 and outcome not in (502, 503, 504) and len(self.unexpected) < 20:
            self.unexpected.append(f"{datetime.now():%H:%M:%S} {what}")

    def refusals(self) -> str:
        return " ".join(f"{code}×{n}" for code, n in sorted(self.refused.items())) or "—"


class Transient(Exception):
    """A connection error, a timeout, 429 or 5xx: worth trying again."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class GaveUp(Exception):
    pass


class Http:
    """Every request of the workload, through the gateway, counted in the current phase's tally."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session
        self.tally = Tally()

    async def request(self, method: str, path: str, *, uncounted: tuple[int, ...] = (), **kwargs) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.base + path
        try:
            async with self.session.request(method, url, allow_redirects=False, **kwargs) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except asyncio.TimeoutError:
            self.tally.record("timeout")
            raise Transient(f"{method} {path}: timeout") from None
        except aiohttp.ClientError as exc:
            self.tally.record("conn")
            raise Transient(f"{method} {path}: {exc.__class__.__name__}") from None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        if status not in uncounted:
            self.tally.record(status, f"{method} {path.split('?')[0]}: {status} {str(body)[:300]}")
        if status == 429 or status >= 500:
            wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
            raise Transient(f"{method} {path}: {status}", wait)
        return status, body


async def retry(step: Callable[[], Awaitable[Any]], patience_s: float = STEP_PATIENCE_S) -> Any:
    """`step()` until it does not fail transiently, for up to `patience_s`."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return await step()
        except Transient as exc:
            if time.monotonic() > deadline:
                raise GaveUp(str(exc)) from None
            await asyncio.sleep(min(max(exc.retry_after or 0.5, 0.2), 2.0))


class Phone(CitizenApp):
    """The reference citizen app, its calls going through the counted HTTP client."""

    def __init__(self, http: Http) -> None:
        super().__init__(Profile(gateway_url=http.base))
        self.http = http

    async def _call(self, method: str, path: str, *, json: Any = None, token: str | None = None,
                    basic: tuple[str, str] | None = None, uncounted: tuple[int, ...] = ()) -> Any:
        headers = {}
        if token:
            headers = self.device_headers(method, path, token)  # DPoP-bound: a proof by the device key
        elif basic:
            headers["Authorization"] = aiohttp.encode_basic_auth(*basic)
        status, body = await self.http.request(method, path, json=json, headers=headers, uncounted=uncounted)
        if status >= 400:
            raise AppError(status, body if isinstance(body, dict) else {"detail": str(body)})
        return body

    async def wait_for_prompt(self, approval_id: str) -> None:
        token = await retry(self.device_token)
        deadline = time.monotonic() + PROMPT_PATIENCE_S
        while True:
            try:
                await retry(lambda: self._call("GET", f"/v1/approvals/{approval_id}", token=token, uncounted=(404,)))
                return
            except AppError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.3)

    async def approve_link(self, link: str) -> tuple[str, dict[str, Any]]:
        """Open a link and approve it, retrying transient failures: (approval id, the decision's answer)."""
        if link.startswith((FORMFILL_LINK, SIGN_LINK)):
            service, prefix = ("formfill", "formfill") if link.startswith(FORMFILL_LINK) else ("signing", "sign")
            request_id = link.split("?request=", 1)[1]
            approval_id = f"{prefix}-{request_id}"
            attempts = 0

            async def claim() -> None:
                nonlocal attempts
                attempts += 1
                token = await self.device_token()
                try:
                    await self._call("POST", f"/v1/{service}/requests/{request_id}/claim", json={}, token=token)
                except AppError:
                    # After an attempt without an answer, a refusal may mean that attempt claimed it: the prompt says.
                    if attempts == 1:
                        raise

            await retry(claim)
            await self.wait_for_prompt(approval_id)
        else:
            async def claim_login() -> dict:
                return await self._call("POST", "/v1/approvals/links", json={"link": link}, token=await self.device_token())

            approval_id = (await retry(claim_login))["approval_id"]
        try:
            return approval_id, await retry(lambda: self.approve(approval_id))
        except AppError as exc:
            if exc.status != 409:
                raise
            # Already decided: an earlier attempt got through but its answer was lost.
            shown = await retry(lambda: self.show(approval_id))
            return approval_id, {"status": shown.get("status")}


# -- the platform under test -------------------------------------------------------------------------------------


@dataclass
class Unit:
    kind: str             # login, formfill, sign, notify, batch
    key: str              # tx, request id, reference (notify), reference prefix (batch)
    approval_id: str | None = None
    decided: bool = False  # the phone saw its approval accepted
    created_id: str | None = None  # notification or job id, when the answer arrived
    code_hash: str | None = None   # login: SHA-256 of the authorization code the phone's approval returned
    recipients: int = 1


@dataclass
class Phase:
    name: str
    tag: str
    started_at: datetime
    client: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    template_id: str = ""
    units: list[Unit] = field(default_factory=list)
    abandoned: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    recovery_s: float | None = None
    recovery_note: str = ""
    load: str = ""
    tally: Tally = field(default_factory=Tally)
    result: dict = field(default_factory=dict)


class Chaos:
    def __init__(self, stack: DevStack, http: Http, metadata: dict) -> None:
        self.stack = stack
        self.http = http
        self.metadata = metadata
        self.phones: list[Phone] = []
        self.subs: list[str] = []
        self._next_phone = 0
        self.dead_letters_seen = 0

    @property
    def gateway(self) -> str:
        return self.stack.config.service_url("gateway")

    def db(self, mongo, service: str):
        return mongo[f"{self.stack.config.db_prefix}{service}"]

    def phone(self) -> Phone:
        self._next_phone = (self._next_phone + 1) % len(self.phones)
        return self.phones[self._next_phone]

    # -- setup: citizens with phones, and their pairwise subject in the bench's sector

    async def setup(self) -> None:
        env = {**os.environ, **self.stack.config.service_env()}
        made = subprocess.run([sys.executable, "-m", "services.auth.admin", "create-client", "--kind", "kiosk",
                               "--name", "Chaos Kiosk", "--scope", "enrol", "--operator", "chaos", "--reason", "chaos setup"], env=env, capture_output=True, text=True, timeout=120)
        if made.returncode != 0:
            raise RuntimeError(f"could not create the kiosk: {made.stderr}")
        kiosk = json.loads(made.stdout)
        for i in range(CITIZENS):
            phone = Phone(self.http)
            enrolment = await phone.enrol(identity(), selfie(), kiosk=(kiosk["client_id"], kiosk["client_secret"]))
            await phone.activate(enrolment["account_id"], enrolment["activation_code"], f"chaos-phone-{i}")
            self.phones.append(phone)
        sector = await self.register("Chaos Sector", scope="openid")
        for phone in self.phones:
            tokens = await self.login(sector, phone, Unit("login", "setup"))
            self.subs.append(claims_of(tokens["id_token"])["sub"])
        log(f"{CITIZENS} citizens enrolled at the kiosk, phones activated, logged in once")

    async def register(self, name: str, **extra) -> dict:
        body = {"client_name": name, "redirect_uris": [REDIRECT], "sector_identifier_uri": SECTOR_URI, **extra}
        # A shared sector is the operator's to grant (the sandbox's open registration may not claim one).
        operator = {"Authorization": f"Bearer {self.stack.config.service_env()['HARBOUR_ADMIN_TOKEN']}"}
        status, client = await retry(lambda: self.http.request("POST", "/v1/clients", json=body, headers=operator))
        if status != 201:
            raise RuntimeError(f"registration answered {status}: {client}")
        return client

    async def client_token(self, client: dict, scope: str) -> str:
        basic = aiohttp.encode_basic_auth(client["client_id"], client["client_secret"])
        status, body = await retry(lambda: self.http.request(
            "POST", "/oidc/token", data={"grant_type": "client_credentials", "scope": scope}, headers={"Authorization": basic}))
        if status != 200:
            raise RuntimeError(f"client credentials answered {status}: {body}")
        return body["access_token"]

    async def prepare(self, phase: Phase) -> None:
        """The phase's own client (one agency topic per phase), its tokens and template, known to every service."""
        # agency_events: the conservation check counts the phase's outcomes on its agency topic.
        phase.client = await self.register(f"Chaos {phase.name}", scope="openid formfill sign notify", formfill_fields=FIELDS,
                                           agency_events=True)
        client_id = phase.client["client_id"]
        for scope in ("formfill", "sign", "notify"):
            phase.tokens[scope] = await self.client_token(phase.client, scope)
        mongo = create_client(self.stack.config.mongo_uri)
        try:
            deadline = time.monotonic() + 60
            for service in ("formfill", "signing", "notify"):
                while await self.db(mongo, service)["clients"].find_one({"_id": client_id}) is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{service} never heard of client {client_id}")
                    await asyncio.sleep(0.2)
        finally:
            await mongo.close()
        status, template = await retry(lambda: self.http.request("POST", "/v1/templates", json=TEMPLATE,
                                                                 headers=self.bearer(phase, "notify")))
        if status != 201:
            raise RuntimeError(f"template answered {status}: {template}")
        phase.template_id = template["template_id"]

    @staticmethod
    def bearer(phase: Phase, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {phase.tokens[scope]}"}

    # -- the journeys --------------------------------------------------------------------------------------------

    async def login(self, client: dict, phone: Phone, unit: Unit, phase: Phase | None = None) -> dict | None:
        url, verifier = authorize_url(self.metadata, client["client_id"], scope="openid")
        status, page = await retry(lambda: self.http.request("GET", url))
        if status != 200:
            raise GaveUp(f"authorize answered {status}")
        link = app_link_of(page)
        unit.key = link.split("tx=", 1)[1].split("&", 1)[0]
        if phase is not None:
            phase.units.append(unit)
        approval_id, outcome = await phone.approve_link(link)
        unit.approval_id = approval_id
        unit.decided = outcome.get("status") == "approved"
        if "redirect_to" not in outcome:
            return None
        code = unquote(re.search(r"[?&]code=([^&]+)", outcome["redirect_to"]).group(1))
        # Auth keeps only the code's hash (services/auth/oidc/tokens.py, token_hash): the check finds it by that.
        unit.code_hash = hashlib.sha256(code.encode()).hexdigest()
        basic = aiohttp.encode_basic_auth(client["client_id"], client["client_secret"])
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        status, tokens = await retry(lambda: self.http.request("POST", "/oidc/token", data=form, headers={"Authorization": basic}))
        return tokens if status == 200 else None

    async def consented(self, phase: Phase, kind: str, i: int) -> None:
        if kind == "formfill":
            path, scope = "/v1/formfill/requests", "formfill"
            body = {"fields": [{"name": f, "required": True} for f in FIELDS], "purpose": f"Chaos {phase.tag} {i}"}
        else:
            path, scope = "/v1/signing/requests", "sign"
            body = {"document_name": f"chaos-{phase.tag}-{i}.txt",
                    "sha256": hashlib.sha256(f"{phase.tag}-{i}-{secrets.token_hex(8)}".encode()).hexdigest()}
        status, created = await retry(lambda: self.http.request("POST", path, json=body, headers=self.bearer(phase, scope)))
        if status != 201:
            raise GaveUp(f"{kind} create answered {status}: {created}")
        unit = Unit(kind, created["request_id"])
        phase.units.append(unit)
        approval_id, outcome = await self.phone().approve_link(created["app_link"])
        unit.approval_id = approval_id
        unit.decided = outcome.get("status") == "approved"

    async def notification(self, phase: Phase, kind: str, i: int) -> None:
        reference = f"{phase.tag}-{kind}-{i}"
        if kind == "notify":
            path = "/v1/notifications"
            body = {"template_id": phase.template_id, "sub": self.subs[i % len(self.subs)],
                    "personalisation": {"n": str(i)}, "reference": reference}
            unit = Unit("notify", reference)
        else:
            path = "/v1/notifications/batch"
            body = {"template_id": phase.template_id,
                    "recipients": [{"sub": sub, "personalisation": {"n": str(i)}, "reference": f"{reference}-{r}"}
                                   for r, sub in enumerate(self.subs)]}
            unit = Unit("batch", reference, recipients=len(self.subs))
        phase.units.append(unit)  # checked even if no answer arrives: notify may have accepted it all the same
        headers = {**self.bearer(phase, "notify"), "Idempotency-Key": reference}
        status, created = await retry(lambda: self.http.request("POST", path, json=body, headers=headers))
        if status not in (200, 201):
            raise GaveUp(f"{kind} answered {status}: {created}")
        unit.created_id = created.get("notification_id") or created.get("job_id")

    async def lane(self, phase: Phase, kind: str, interval_s: float) -> None:
        i = 0
        while not phase.stopping.is_set():
            started = time.monotonic()
            try:
                if kind == "login":
                    await self.login(phase.client, self.phone(), Unit("login", ""), phase)
                elif kind in ("formfill", "sign"):
                    await self.consented(phase, kind, i)
                else:
                    await self.notification(phase, kind, i)
            except (GaveUp, AppError, Transient) as exc:
                phase.abandoned[kind] += 1
                if len(phase.errors) < 20:
                    phase.errors.append(f"{kind}: {exc}")
            except Exception as exc:  # the bench's own bug or an answer it cannot read: note it, keep the lane going
                phase.abandoned[kind] += 1
                phase.errors.append(f"{kind}: unexpected {exc!r}")
            i += 1
            try:
                await asyncio.wait_for(phase.stopping.wait(), max(0.0, interval_s - (time.monotonic() - started)))
            except asyncio.TimeoutError:
                pass

    # -- readiness -----------------------------------------------------------------------------------------------

    def readiness_urls(self) -> list[str]:
        config = self.stack.config
        return [config.service_url(n) + "/readyz" for n in SERVICES] + [config.worker_url(n) + "/readyz" for n in WORKERS]

    async def all_ready(self) -> bool:
        async def ready(url: str) -> bool:
            try:
                async with self.http.session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False

        return all(await asyncio.gather(*(ready(u) for u in self.readiness_urls())))

    async def restart(self, start: Callable[[], Any], phase: Phase) -> None:
        """Run `start` (blocking: make up's way) and time it from now until every /readyz answers 200."""
        began = time.monotonic()
        starting = asyncio.create_task(asyncio.to_thread(start))
        while time.monotonic() - began < READY_LIMIT_S and not (starting.done() and starting.exception()):
            if await self.all_ready():
                phase.recovery_s = time.monotonic() - began
                break
            await asyncio.sleep(0.2)
        else:
            phase.recovery_note = f"not ready after {time.monotonic() - began:.0f} s"
        try:
            await asyncio.wait_for(starting, READY_LIMIT_S)
        except Exception as exc:  # make up's way failed: say so, then do what an operator would — make up again
            phase.recovery_s = None
            phase.recovery_note = f"make up failed after {time.monotonic() - began:.0f} s"
            log(f"  {phase.recovery_note}: {exc}")
            again = time.monotonic()
            await asyncio.wait_for(asyncio.to_thread(self.stack.up), 300)
            log(f"  a second make up brought the stack back in {time.monotonic() - again:.0f} s")

    # -- faults --------------------------------------------------------------------------------------------------

    async def inject(self, phase: Phase, fault: str) -> None:
        if fault == "none":
            await asyncio.sleep(DOWN_S)
            return
        if fault == "stall database":
            pid = processes.running_pid(self.stack.mongo_spec().pid_file, self.stack.mongo_spec().marker)
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(STALL_S)
            finally:
                os.kill(pid, signal.SIGCONT)
            await self.restart(lambda: None, phase)
            return
        target = FAULTS[fault]
        killed = self.stack.crash(target)
        log(f"  SIGKILL {target} (pid {killed})")
        await asyncio.sleep(DOWN_S)
        await self.restart(self.stack.up, phase)

    # -- one phase -----------------------------------------------------------------------------------------------

    async def phase(self, fault: str, warm_s: float, after_s: float) -> Phase:
        tag = f"{re.sub(r'[^a-z]+', '-', fault)}-{secrets.token_hex(3)}"
        phase = Phase(fault, tag, datetime.now(UTC))
        self.http.tally = Tally()  # setup calls are not the workload's
        await self.prepare(phase)
        phase.tally = self.http.tally = Tally()
        lanes = [asyncio.create_task(self.lane(phase, kind, interval)) for kind, interval in LANES.items()]
        await asyncio.sleep(warm_s)
        log(f"  fault: {fault}")
        phase.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        await self.inject(phase, fault)
        if phase.recovery_s is not None:
            log(f"  every /readyz 200 {phase.recovery_s:.1f} s after the restart")
        elif phase.recovery_note:
            log(f"  {phase.recovery_note}")
        await asyncio.sleep(after_s)
        phase.stopping.set()
        done, pending = await asyncio.wait(lanes, timeout=DRAIN_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.http.tally = Tally()
        log(f"  workload stopped: {phase.tally.sent} requests, {len(phase.units)} journeys accepted at least in part; settling")
        phase.result = await self.settle_and_check(phase)
        return phase

    # -- conservation --------------------------------------------------------------------------------------------

    async def database_view(self, phase: Phase) -> dict:
        """What the databases say of the phase's work and outboxes."""
        mongo = create_client(self.stack.config.mongo_uri)
        try:
            approval_ids = [u.approval_id for u in phase.units if u.approval_id]
            txs = [u.key for u in phase.units if u.kind == "login" and u.key]
            view: dict[str, Any] = {
                "approvals": {d["_id"]: d["status"] async for d in
                              self.db(mongo, "auth")["approvals"].find({"_id": {"$in": approval_ids}}, {"status": 1})},
            }
            # Every authorization code issued for each login, wherever auth keeps it: a browser login's code lives
            # in its own document (`authorizations`, _id = tx, field `code`, since fca3612); a code of its own in
            # `authorization_codes`, naming its login by `tx` (before fca3612; still counted, so a login that
            # issued one of each shows as two). By hash: the check also asks whether the code the phone was given
            # is the one auth holds (a second issue would have replaced it).
            codes: dict[str, list[str]] = {}
            async for d in self.db(mongo, "auth")["authorization_codes"].find({"tx": {"$in": txs}}, {"tx": 1}):
                codes.setdefault(d["tx"], []).append(d["_id"])
            async for d in self.db(mongo, "auth")["authorizations"].find({"_id": {"$in": txs}}, {"code": 1}):
                if d.get("code"):
                    codes.setdefault(d["_id"], []).append(d["code"]["hash"])
            view["codes"] = codes
            for kind, service in (("formfill", "formfill"), ("sign", "signing")):
                ids = [u.key for u in phase.units if u.kind == kind]
                view[kind] = {d["_id"]: d["status"] async for d in
                              self.db(mongo, service)["requests"].find({"_id": {"$in": ids}}, {"status": 1})}
            view["consents"] = Counter([d["request_id"] async for d in self.db(mongo, "formfill")["consents"].find(
                {"client_id": phase.client["client_id"]}, {"request_id": 1})])
            notifications = [d async for d in self.db(mongo, "notify")["notifications"].find(
                {"client_id": phase.client["client_id"]}, {"reference": 1, "status": 1, "job_id": 1})]
            view["notifications"] = notifications
            view["inbox"] = Counter([d["notification_id"] async for d in self.db(mongo, "notify")["inbox"].find(
                {"notification_id": {"$in": [n["_id"] for n in notifications]}}, {"notification_id": 1})])
            outbox = []
            for service in ("auth", "formfill", "notify", "signing"):
                async for d in self.db(mongo, service)["outbox"].find({"created_at": {"$gte": phase.started_at}},
                                                                      {"topic": 1, "type": 1, "pending": 1,
                                                                       "partition": 1, "offset": 1}):
                    outbox.append({**d, "service": service})
            view["outbox"] = outbox
            view["awaiting_read_back"] = await asyncio.to_thread(self.awaiting_read_back)
            return view
        finally:
            await mongo.close()

    def work_check(self, phase: Phase, view: dict, events: dict | None) -> dict:
        """Accepted work, and what of it is lost or duplicated (per kind, with the first few ids)."""
        accepted: Counter = Counter()
        lost: list[str] = []
        dup: list[str] = []
        approvals, codes = view["approvals"], view["codes"]
        for unit in phase.units:
            if unit.kind in ("login", "formfill", "sign"):
                approved = approvals.get(unit.approval_id) == "approved"
                if unit.decided and not approved:
                    lost.append(f"{unit.kind} {unit.key}: the phone's approval was accepted, auth shows {approvals.get(unit.approval_id)}")
                if not approved:
                    continue
                accepted[unit.kind] += 1
                if unit.kind == "login":
                    issued = codes.get(unit.key, [])
                    if not issued:
                        lost.append(f"login {unit.key}: approved, no authorization code")
                    elif len(issued) > 1:
                        dup.append(f"login {unit.key}: {len(issued)} authorization codes")
                    elif unit.code_hash is not None and unit.code_hash not in issued:
                        dup.append(f"login {unit.key}: auth holds another code than the one the phone was given (issued again)")
                    continue
                status = view[unit.kind].get(unit.key)
                if status != FINAL[unit.kind]:
                    lost.append(f"{unit.kind} {unit.key}: approved in auth, {status} in its service")
                if unit.kind == "formfill" and view["consents"][unit.key] > 1:
                    dup.append(f"formfill {unit.key}: {view['consents'][unit.key]} consent receipts")
                if events is not None:
                    named = events["by_request"][unit.key]
                    if status == FINAL[unit.kind] and len(named) == 0:
                        lost.append(f"{unit.kind} {unit.key}: no completion event on the agency topic")
                    elif len(named) > 1:
                        dup.append(f"{unit.kind} {unit.key}: {len(named)} completion events")
        # Notifications: by reference (a batch's recipients are reference-0..n).
        by_reference: dict[str, list[dict]] = {}
        for doc in view["notifications"]:
            by_reference.setdefault(doc.get("reference") or "", []).append(doc)
        for unit in phase.units:
            if unit.kind not in ("notify", "batch"):
                continue
            references = [unit.key] if unit.kind == "notify" else [f"{unit.key}-{r}" for r in range(unit.recipients)]
            found = [by_reference.get(ref, []) for ref in references]
            if unit.created_id is None and not any(found):
                continue  # never accepted (every attempt refused or unanswered, and nothing stored)
            for ref, docs in zip(references, found):
                accepted["notification"] += 1
                if not docs:
                    lost.append(f"{unit.kind} {ref}: accepted, no notification")
                    continue
                if len(docs) > 1:
                    dup.append(f"{unit.kind} {ref}: {len(docs)} notifications")
                for doc in docs:
                    if doc["status"] not in DELIVERED:
                        lost.append(f"{unit.kind} {ref}: {doc['_id']} is {doc['status']}")
                    elif view["inbox"][doc["_id"]] != 1:
                        (lost if view["inbox"][doc["_id"]] == 0 else dup).append(
                            f"{unit.kind} {ref}: {view['inbox'][doc['_id']]} inbox items")
                    if events is not None and doc["status"] in DELIVERED:
                        n = len(events["delivered"][doc["_id"]])
                        if n != 1:
                            (lost if n == 0 else dup).append(f"{unit.kind} {ref}: delivered {n} times on the agency topic")
        if events is not None:
            logins = accepted["login"]
            succeeded = len(events["logins"])
            if succeeded < logins:
                lost.append(f"login: {logins} approved, {succeeded} login.succeeded on the agency topic")
            elif succeeded > logins:
                dup.append(f"login: {logins} approved, {succeeded} login.succeeded on the agency topic")
        return {"accepted": accepted, "lost": lost, "dup": dup}

    def awaiting_read_back(self) -> dict[str, float]:
        """Per service, the events its relay has yet to read back from the broker (its /metrics)."""
        return {service: sum(s.value for s in support.scrape(self.stack.config.metrics_url(service),
                                                             "harbour_outbox_awaiting_read_back"))
                for service in ("auth", "formfill", "notify", "signing")}

    def settled(self, view: dict, work: dict) -> bool:
        busy = [d for d in view["outbox"] if d.get("pending")] or [s for s, n in view["awaiting_read_back"].items() if n]
        return not busy and not work["lost"]

    async def topics(self, phase: Phase) -> tuple[Counter, dict, int]:
        """Every record of every topic: (topic, event id) counts, the phase's agency events, dead letters."""
        messages, expected = await asyncio.wait_for(read_every_topic(self.stack.config.kafka_bootstrap), 180)
        if len(messages) != expected:
            log(f"  read {len(messages)} records where the partitions' offsets span {expected}")
        counts: Counter = Counter()
        agency = f"agency.{phase.client['client_id']}.events"
        events = {"by_request": {}, "delivered": {}, "logins": set()}
        by_request: dict[str, set] = {}
        delivered: dict[str, set] = {}
        dead = 0
        for message in messages:
            if message.topic.endswith(".dlq"):
                dead += 1
                continue
            try:
                event = json.loads(message.value)
            except (ValueError, TypeError):
                continue
            counts[(message.topic, event.get("id"))] += 1
            if message.topic != agency:
                continue
            data = event.get("data") or {}
            if event["type"] in ("consent.granted", "signature.completed"):
                by_request.setdefault(data.get("request_id"), set()).add(event["id"])
            elif event["type"] == "login.succeeded":
                events["logins"].add(event["id"])
            elif event["type"] == "notification.status_changed":
                for item in data.get("notifications", []):
                    if item.get("status") == "delivered":
                        delivered.setdefault(item["notification_id"], set()).add(event["id"])
        events["by_request"] = _EmptySets(by_request)
        events["delivered"] = _EmptySets(delivered)
        return counts, events, dead

    async def settle_and_check(self, phase: Phase) -> dict:
        began = time.monotonic()
        view = None
        said = began
        while True:
            try:
                view = await self.database_view(phase)
                work = self.work_check(phase, view, None)
                if self.settled(view, work) or time.monotonic() - began > SETTLE_S:
                    break
                if time.monotonic() - said >= 15:  # what settling waits for, now and then
                    said = time.monotonic()
                    busy = Counter(f"{d['service']} pending" for d in view["outbox"] if d.get("pending"))
                    busy.update({f"{service} awaiting read-back": int(n) for service, n in view["awaiting_read_back"].items() if n})
                    log(f"  settling {said - began:.0f} s: outbox {dict(busy) or 'empty'}; {len(work['lost'])} not final"
                        + (f" (first: {work['lost'][0]})" if work["lost"] else ""))
            except Exception as exc:  # the database may still be coming back
                log(f"  settle: {exc.__class__.__name__}: {str(exc)[:200]}")
                if time.monotonic() - began > SETTLE_S:
                    break
            await asyncio.sleep(2)
        if view is None:
            return {"settle_s": time.monotonic() - began, "work": {"accepted": Counter(), "lost": [], "dup": []}, "events": 0,
                    "lost_events": ["not checked: the databases could not be read"], "dup_events": [], "dead_letters": 0,
                    "note": "not checked"}
        settle_s = time.monotonic() - began
        counts, events, dead = await self.topics(phase)
        work = self.work_check(phase, view, events)
        lost_events, dup_events = self.event_check(view, counts)
        note = ""
        if lost_events or work["lost"]:
            # Read once more before calling anything lost: tells a loss from a read that came back short.
            await asyncio.sleep(5)
            again, events, dead = await self.topics(phase)
            work_again = self.work_check(phase, view, events)
            lost_again, dup_events = self.event_check(view, again)
            if len(lost_again) < len(lost_events) or len(work_again["lost"]) < len(work["lost"]):
                note = (f"a first read of the topics ({sum(counts.values())} records) lacked {len(lost_events) - len(lost_again)} "
                        f"of the phase's events that a second read ({sum(again.values())} records) found")
                log(f"  {note}")
            work, lost_events = work_again, lost_again
        new_dead, self.dead_letters_seen = dead - self.dead_letters_seen, dead
        return {"settle_s": settle_s, "work": work, "events": len(view["outbox"]), "lost_events": lost_events,
                "dup_events": dup_events, "dead_letters": new_dead, "note": note}

    @staticmethod
    def event_check(view: dict, counts: Counter) -> tuple[list[str], list[str]]:
        """Every event of the phase's outboxes: still pending, missing from its topic, or there more than once."""
        lost: list[str] = []
        dup: list[str] = []
        for doc in view["outbox"]:
            where = (f"{doc['service']} {doc['type']} {doc['_id']} on {doc['topic']}"
                     + (f" (sent to {doc['partition']}@{doc['offset']})" if "offset" in doc else ""))
            if doc.get("pending"):
                lost.append(f"{where}: still pending in the outbox")
                continue
            n = counts[(doc["topic"], doc["_id"])]
            if n == 0:
                lost.append(f"{where}: marked sent, not on the topic")
            elif n > 1:
                dup.append(f"{where}: {n} times on the topic")
        return lost, dup


async def read_every_topic(bootstrap: str) -> tuple[list, int]:
    """Every record of every topic, from each partition's start to the end it had when the read began.

    A throwaway consumer (no group, commits nothing). Each topic's partitions come from fresh metadata, asked
    again while the broker names a topic without its partitions; the records read must add up to the
    partitions' end offsets minus their start offsets (returned with the records, for the caller to compare).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                client_id="harbour-chaos-reader")
    await consumer.start()
    try:
        for _ in range(20):
            names = sorted(t for t in await consumer.topics() if not t.startswith("__"))
            partitions = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
            if names and all(consumer.partitions_for_topic(t) for t in names):
                break
            await asyncio.sleep(0.5)
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in partitions if ends[tp] > starts[tp]}
        messages = []
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=5000)
            for tp, batch in batches.items():
                messages.extend(m for m in batch if m.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return messages, sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


class _EmptySets(dict):
    def __missing__(self, key):
        return set()


# Fault name → the process SIGKILLed and started again (the database stall is its own case).
FAULTS = {
    "kill auth": "auth",
    "kill formfill": "formfill",
    "kill notify": "notify",
    "kill signing": "signing",
    "kill dispatcher": "notify-dispatcher",
    "kill gateway": "gateway",
    "kill broker": "kafka",
    "kill database": "mongodb",
}
ALL_FAULTS = ["none", *FAULTS, "stall database"]


def table(phases: list[Phase]) -> str:
    lines = ["| fault | sent | 2xx | refused by code | work accepted | lost (work + events) | duplicated (work + events) | events checked | recovery s |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for p in phases:
        r = p.result
        work = r["work"]
        accepted = sum(work["accepted"].values())
        lost = f"{len(work['lost'])} + {len(r['lost_events'])}"
        dup = f"{len(work['dup'])} + {len(r['dup_events'])}"
        if p.name == "none":
            recovery = "—"
        else:
            recovery = f"{p.recovery_s:.1f}" if p.recovery_s is not None else p.recovery_note or "?"
        name = {"none": "none (baseline)", "stall database": "SIGSTOP database 10 s"}.get(p.name, p.name.replace("kill ", "SIGKILL "))
        lines.append(f"| {name} | {p.tally.sent} | {p.tally.ok} | {p.tally.refusals()} | {accepted} | {lost} | {dup} | {r['events']} | {recovery} |")
    return "\n".join(lines)


def details(phase: Phase, limit: int | None = 15) -> list[str]:
    r = phase.result
    work = r["work"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(work["accepted"].items()))
    out = [f"{phase.name}: accepted {kinds}; abandoned journeys {dict(phase.abandoned) or 0}; settled in {r['settle_s']:.0f} s;"
           f" new dead letters {r['dead_letters']}; load average at the fault {phase.load}"]
    if r["note"]:
        out.append(f"    note: {r['note']}")
    for label, items in (("lost", work["lost"] + r["lost_events"]), ("duplicated", work["dup"] + r["dup_events"])):
        for item in items[:limit]:
            out.append(f"    {label}: {item}")
        if limit is not None and len(items) > limit:
            out.append(f"    ... and {len(items) - limit} more {label} (all in {REPORT.relative_to(REPO_ROOT)})")
    for error in phase.errors[:limit]:
        out.append(f"    gave up: {error}")
    for answer in phase.tally.unexpected[:limit]:
        out.append(f"    unexpected answer: {answer}")
    return out


async def run(stack: DevStack, faults: list[str], warm_s: float, after_s: float, budget_s: float) -> list[Phase]:
    began = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        http = Http(stack.config.service_url("gateway"), session)
        _, metadata = await retry(lambda: http.request("GET", "/.well-known/openid-configuration"))
        chaos = Chaos(stack, http, metadata)
        await chaos.setup()
        phases = []
        for fault in faults:
            if time.monotonic() - began > budget_s:
                log(f"budget of {budget_s:.0f} s spent: {fault} and what follows not run")
                break
            log(f"phase: {fault}")
            phase = await chaos.phase(fault, warm_s, after_s)
            phases.append(phase)
            for line in details(phase):
                log(line)
            with REPORT.open("a") as report:
                report.write("\n".join(details(phase, limit=None)) + "\n")
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", help=f"comma-separated, from: {', '.join(ALL_FAULTS)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="one fault (kill formfill), short windows")
    parser.add_argument("--warm-s", type=float, default=8.0, help="workload before each fault")
    parser.add_argument("--after-s", type=float, default=10.0, help="workload after each recovery")
    parser.add_argument("--budget-s", type=float, default=900.0, help="no new phase starts after this")
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (logs, data) after the run")
    args = parser.parse_args()
    faults = ["kill formfill"] if args.smoke else (
        [f.strip() for f in args.faults.split(",")] if args.faults else ALL_FAULTS)
    unknown = [f for f in faults if f not in ALL_FAULTS]
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {ALL_FAULTS}")
    if args.smoke:
        args.warm_s, args.after_s = 4.0, 4.0

    (REPO_ROOT / ".dev").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="chaos-", dir=REPO_ROOT / ".dev"))
    config = StackConfig.free_ports(folder)
    # The workload comes from one loopback address: lift the gateway's per-address and per-client limits.
    config.extra_env = {"HARBOUR_GATEWAY_RATE_PER_IP": "1000000", "HARBOUR_GATEWAY_BURST_PER_IP": "1000000",
                        "HARBOUR_GATEWAY_RATE_PER_CLIENT": "1000000", "HARBOUR_GATEWAY_BURST_PER_CLIENT": "1000000"}
    stack = DevStack(config)
    REPORT.write_text(f"chaos run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, faults {faults}\n")
    log(f"starting a private stack in {folder}...")
    started = time.monotonic()
    try:
        stack.up()
        log(f"stack ready in {time.monotonic() - started:.0f} s")
        phases = asyncio.run(run(stack, faults, args.warm_s, args.after_s, args.budget_s))
    finally:
        mongo_pid = processes.running_pid(stack.mongo_spec().pid_file, stack.mongo_spec().marker)
        if mongo_pid is not None:
            os.kill(mongo_pid, signal.SIGCONT)  # never leave it stopped: SIGTERM would not reach it
        stack.down()
        if args.keep:
            log(f"kept {folder}")
        else:
            # The processes' logs outlive the run (the report points into them); the data goes.
            shutil.rmtree(LOGS, ignore_errors=True)
            shutil.move(folder / "logs", LOGS)
            shutil.rmtree(folder, ignore_errors=True)
            log(f"logs in {LOGS.relative_to(REPO_ROOT)}")
    print()
    print(f"chaos run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {len(phases)} phases, "
          f"{time.monotonic() - started:.0f} s in all")
    print(table(phases))
    clean = all(not p.result["work"]["lost"] and not p.result["lost_events"] and not p.result["work"]["dup"]
                and not p.result["dup_events"] for p in phases)
    recovered = all(p.name == "none" or (p.recovery_s is not None and p.recovery_s <= 15.0) for p in phases)
    print(f"conservation: {'0 lost, 0 duplicated' if clean else 'VIOLATED (details above)'}; "
          f"recovery: {'every fault within 15 s' if recovered else 'NOT every fault within 15 s'}")
    return 0 if clean and recovered and len(phases) == len(faults) else 1


if __name__ == "__main__":
    sys.exit(main())
