"""notify in process (tests/service/conftest.py), with auth played by the test (tests/support/auth_stand_in.py).

`notify` starts the API on a FrozenClock and gives what the use cases need:
agencies and citizens notify has learnt of (auth's events handed to its
handler), their tokens, and the dispatcher's work done in the test's own
process: `dispatch()` hands the dispatch and job events the API wrote to its
outbox to the dispatcher's handler, as its consumer would, and
`timed_work()` runs one round of what the dispatcher does on a timer
(releases, sweeps, pushes, callbacks) at the clock's time. Moving the clock
replaces every wait: scheduled sends, quiet hours, back-off.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from libs.events import CloudEvent
from libs.outbound import Outbound
from services.notify import callbacks, sweeps
from services.notify.api import NOTIFY
from services.notify.channels import adapter_for, batch_queue, push_queue, send_due_push_batches, send_due_pushes
from services.notify.dispatcher import ConsumerActivity
from services.notify.dispatcher import handler as dispatcher_handler
from services.notify.events import handler
from tests.support.auth_stand_in import (
    Citizen,
    RelyingParty,
    ServiceUnderTest,
    auth_stand_in,
    enrolled,
    new_account_id,
    published,
)
from tests.support.calls import bearer
from tests.support.notify import TEMPLATE

__all__ = ["auth_stand_in"]  # a fixture

pytestmark = pytest.mark.service

VALUES = {"name": "Chan Tai Man", "licence": "DL-42"}


@dataclass
class NotifyUnderTest(ServiceUnderTest):
    name = "notify"
    app_key = NOTIFY
    handler = handler
    scope = "notify"
    approval_prefix = "notify"
    # Dispatch and job events already handed to the dispatcher's handler.
    handled: set[str] = field(default_factory=set)
    activity: ConsumerActivity = field(default_factory=ConsumerActivity)

    # -- who notify knows ------------------------------------------------------

    async def agency(self, *, name: str = "Transport Department") -> RelyingParty:
        return await self.relying_party(name=name, kind="agency")

    async def citizen(self, agency: RelyingParty, *, language: str = "en", state: str = "active") -> Citizen:
        enrolment = enrolled(new_account_id(), state=state)
        enrolment.data["language"] = language
        return await self.known_citizen(agency, enrolment)

    def agency_token(self, agency: RelyingParty) -> dict[str, str]:
        """The agency's own client-credentials token (sub = its client id)."""
        return self.rp_token(agency)

    # -- agencies' calls -------------------------------------------------------

    async def template(self, agency: RelyingParty, body: dict[str, Any] = TEMPLATE) -> dict[str, Any]:
        response = await self.http.post("/v1/templates", json=body, headers=self.agency_token(agency))
        assert response.status == 201, await response.text()
        return await response.json()

    async def send(self, agency: RelyingParty, body: dict[str, Any], **headers: str):
        return await self.http.post("/v1/notifications", json=body, headers={**self.agency_token(agency), **headers})

    async def send_batch(self, agency: RelyingParty, body: dict[str, Any], **headers: str):
        return await self.http.post("/v1/notifications/batch", json=body, headers={**self.agency_token(agency), **headers})

    async def status(self, agency: RelyingParty, notification_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/notifications/{notification_id}", headers=self.agency_token(agency))
        assert response.status == 200, await response.text()
        return await response.json()

    async def progress(self, agency: RelyingParty, job_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/notifications/batch/{job_id}", headers=self.agency_token(agency))
        assert response.status == 200, await response.text()
        return await response.json()

    # -- the citizen's phone ---------------------------------------------------

    async def inbox(self, citizen: Citizen, **query: str) -> list[dict[str, Any]]:
        response = await self.http.get("/v1/inbox", params=query, headers=self.device_token(citizen))
        assert response.status == 200, await response.text()
        return (await response.json())["messages"]

    async def preferences(self, citizen: Citizen, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.put("/v1/preferences", json=body, headers=self.device_token(citizen))
        assert response.status == 200, await response.text()
        return await response.json()

    # -- the dispatcher's work, in this process --------------------------------

    async def dispatch(self) -> int:
        """Hand every dispatch and job event not handled yet to the dispatcher's handler, until none is left."""
        handle = dispatcher_handler(self.ctx, self.activity)
        handled = 0
        while True:
            waiting = [event for event_type in ("notification.job", "notification.dispatch")
                       for event in await published(self.ctx, event_type) if event.id not in self.handled]
            if not waiting:
                return handled
            for event in waiting:
                await self.ctx.transaction(lambda session, event=event: handle(event, session))
                self.handled.add(event.id)
                handled += 1

    async def expand(self, job_id: str) -> list[CloudEvent]:
        """Only the job's expansion (its job event to the dispatcher's handler): the chunk events it published, unhandled."""
        [job_event] = await published(self.ctx, "notification.job", job_id)
        await self.ctx.transaction(lambda session: dispatcher_handler(self.ctx, self.activity)(job_event, session))
        self.handled.add(job_event.id)
        return [e for e in await published(self.ctx, "notification.dispatch") if e.data.get("job_id") == job_id]

    def forget(self, event: CloudEvent) -> None:
        """An event the dispatcher will never see (it died with it): dispatch() passes it over."""
        self.handled.add(event.id)

    async def timed_work(self, outbound: Outbound | None = None) -> int:
        """One round of the dispatcher's timed work at the clock's time, then whatever it dispatched."""
        settings = self.ctx.settings
        busy = await sweeps.release_due(self.ctx, settings.chunk_size)
        busy += await sweeps.redispatch_stale(self.ctx, settings.stale_after_s, settings.chunk_size)
        busy += await sweeps.reexpand_stale(self.ctx, settings.stale_after_s)
        pushes = push_queue(self.ctx.db, max_attempts=settings.push_max_attempts, backoff_s=settings.push_backoff_s)
        batches = batch_queue(self.ctx.db, max_attempts=settings.push_max_attempts, backoff_s=settings.push_backoff_s)
        adapter = adapter_for("local", self.ctx.db, self.ctx.cipher, self.clock)
        busy += await send_due_push_batches(batches, pushes, self.ctx.cipher, adapter, self.clock)
        busy += await send_due_pushes(pushes, self.ctx.cipher, adapter, self.clock)
        busy += await callbacks.send_due(self.ctx, outbound or Outbound(allow_loopback=True))
        await self.dispatch()
        return busy

    async def delivered(self, agency: RelyingParty, citizen: Citizen, **overrides: Any) -> dict[str, Any]:
        """A notification sent to `citizen` and dispatched: its status."""
        template = await self.template(agency)
        body = {"template_id": template["template_id"], "sub": citizen.sub, "personalisation": VALUES, **overrides}
        sent = await self.send(agency, body)
        assert sent.status == 201, await sent.text()
        await self.dispatch()
        return await self.status(agency, (await sent.json())["notification_id"])


@pytest.fixture
async def notify(start_service, auth_stand_in, service_secrets, clock) -> NotifyUnderTest:
    return await NotifyUnderTest.start(start_service, auth_stand_in, clock, service_secrets)


async def problem(response) -> dict[str, Any]:
    assert response.content_type == "application/problem+json", (response.status, await response.text())
    return await response.json()


def citizen_token(notify: NotifyUnderTest, agency: RelyingParty, citizen: Citizen) -> dict[str, str]:
    """A relying party's access token for a logged-in citizen: not the agency speaking for itself."""
    return bearer(notify.auth.relying_party_token(agency.client_id, "notify", sub=citizen.sub))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
