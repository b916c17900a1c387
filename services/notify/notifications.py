"""Notifications: an agency sends a template to a citizen it knows by their pairwise `sub`.

A send is stored with its (encrypted) personalisation and, when due now, a
dispatch event in the same transaction; the dispatcher (dispatcher.py)
renders and delivers. The status life cycle (GOV.UK Notify's, with the
citizen's inbox at the end) is statuses.py's; batches are jobs.py's; an
`Idempotency-Key` makes a retried request return what the first one created
(idempotency.py).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer
from pymongo.asynchronous.client_session import AsyncClientSession

from libs.events import CloudEvent
from libs.events.topics import NOTIFICATIONS, NOTIFICATIONS_PRIORITY
from libs.service.validation import DisplayParagraph

from . import idempotency, templates
from .callers import Agency
from .collections import NOTIFICATIONS as NOTIFICATIONS_COLLECTION
from .context import Notify
from .errors import MissingPlaceholder, NotFound, PersonalisationTooLong, ScheduleTooFar, UnknownRecipient
from .metrics import NOTIFICATIONS_CREATED
from .preferences import AgencyChannel
from .recipients import agency_record, resolve
from .statuses import NotificationStatus

Priority = Literal["normal", "high"]
MAX_SCHEDULE = timedelta(days=7)
# The longest personalisation value (templates.MAX_VALUE_CHARS is the worst case tried at creation).
MAX_VALUE_CHARS = templates.MAX_VALUE_CHARS


class SendOptions(BaseModel):
    """What a single send and a batch have in common."""

    model_config = ConfigDict(extra="forbid")
    template_id: str = Field(min_length=1, max_length=100)
    template_version: int | None = Field(default=None, ge=1, description="absent: the latest version, pinned at send")
    priority: Priority = "normal"
    send_at: datetime | None = Field(default=None, description="RFC 3339; deliver at this time (at most 7 days ahead)")
    channels: list[AgencyChannel] | None = Field(
        default=None, min_length=1, max_length=3,
        description="the channels beside the inbox in the agency's order of preference: the first one the citizen turned on "
                    "carries the message (absent: push, email, sms); the inbox always holds it")

    @field_validator("channels")
    @classmethod
    def _once_each(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and len(set(values)) != len(values):
            raise ValueError("each channel at most once")
        return values


class PersonalisationField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sub: str = Field(min_length=1, max_length=200, description="the citizen's pairwise subject at this agency")
    personalisation: dict[str, DisplayParagraph] = Field(default_factory=dict, max_length=50)  # rendered into the message
    reference: str | None = Field(default=None, max_length=200, description="the agency's own reference, echoed back")


class NotificationBody(SendOptions, PersonalisationField):
    pass


class NotificationAccepted(BaseModel):
    notification_id: str
    status: NotificationStatus
    template_id: str
    template_version: int
    reference: str | None = None


class Notification(BaseModel):
    notification_id: str
    status: NotificationStatus
    sub: str | None
    reference: str | None = None
    template_id: str | None
    template_version: int | None
    priority: Priority
    job_id: str | None = None
    created_at: str
    timeline: dict[str, str]
    due_at: str | None = Field(default=None, description="while it is `created`: when it is due")
    reason: str | None = Field(default=None, description="why it failed")
    channel: Literal["inbox", "push", "email", "sms"] | None = Field(
        default=None, description="once delivered or sent: the channel beside the inbox that carried it (inbox: none)")

    @model_serializer(mode="wrap")
    def _only_when_they_apply(self, handler):  # no return annotation: the schema stays the model's own
        out = handler(self)
        for name in ("due_at", "reason", "channel"):
            if out.get(name) is None:
                out.pop(name, None)
        return out


def check_values(personalisation: dict[str, str]) -> None:
    for value in personalisation.values():
        if len(value) > MAX_VALUE_CHARS:
            raise PersonalisationTooLong(f"a personalisation value is at most {MAX_VALUE_CHARS} characters")


def due_time(body: SendOptions, now: datetime) -> datetime:
    """When a send is due: now, or its `send_at` (at most 7 days ahead)."""
    if body.send_at is None:
        return now
    send_at = body.send_at if body.send_at.tzinfo else body.send_at.replace(tzinfo=UTC)
    if send_at - now > MAX_SCHEDULE:
        raise ScheduleTooFar("send_at is at most 7 days ahead")
    return max(send_at.astimezone(UTC), now)


def dispatch_topic(priority: str) -> str:
    return NOTIFICATIONS_PRIORITY.name if priority == "high" else NOTIFICATIONS.name


def dispatch_event(notify: Notify, ids: list[str], priority: str) -> tuple[str, CloudEvent]:
    """The event that has the dispatcher deliver these notifications (a chunk), on the topic of their priority."""
    return dispatch_topic(priority), notify.event("notification.dispatch", ids[0], {"notification_ids": ids})


def new_notification(notify: Notify, *, client: dict[str, Any] | None, template: dict[str, Any] | None, kind: str,
                     account_id: str | None, sub: str | None, personalisation: dict[str, str], reference: str | None,
                     priority: str, due_at: datetime, now: datetime, job_id: str | None = None,
                     platform_message: str | None = None, notification_id: str | None = None,
                     channels: list[str] | None = None) -> dict[str, Any]:
    notification_id = notification_id or f"ntf-{secrets.token_urlsafe(12)}"
    status = NotificationStatus.SENDING if due_at <= now else NotificationStatus.CREATED
    return {
        "_id": notification_id, "kind": kind,
        "client_id": client["_id"] if client else None, "client_name": client["name"] if client else "Harbour ID",
        "sub": sub, "account_id": account_id,
        "template_id": template["template_id"] if template else None,
        "template_version": template["version"] if template else None,
        "platform_message": platform_message,
        "sealed": notify.cipher.encrypt_record({"personalisation": json.dumps(personalisation)}, record_id=notification_id),
        "reference": reference, "priority": priority, "job_id": job_id,
        **({"channels": channels} if channels else {}),  # the agency's order of channels, when it gave one
        "status": status, "due_at": due_at, "created_at": now, "updated_at": now,
        "timeline": {NotificationStatus.CREATED: now} | ({NotificationStatus.SENDING: now} if status == NotificationStatus.SENDING else {}),
    }


async def send(notify: Notify, agency: Agency, body: NotificationBody, idempotency_key: str | None) -> tuple[NotificationAccepted, bool]:
    """(what was accepted, created); a retry under the same Idempotency-Key gets the first answer (idempotency.py)."""

    async def prepare() -> idempotency.Work[NotificationAccepted]:
        client = await agency_record(notify.db, agency.client_id)
        template = await templates.get(notify.db, agency.client_id, body.template_id, body.template_version)
        missing = templates.missing_placeholders(template, body.personalisation)
        if missing:
            raise MissingPlaceholder(f"personalisation lacks: {', '.join(missing)}", placeholders=missing)
        check_values(body.personalisation)
        now = notify.clock.now()
        due_at = due_time(body, now)
        account_id = (await resolve(notify.db, client["sector"], [body.sub])).get(body.sub)
        if account_id is None:
            # Only this agency's own sector is searched: the answer says nothing about other services' citizens.
            raise UnknownRecipient("no citizen with this sub has signed in to this service (or notify has not heard of it yet)")

        async def work(session: AsyncClientSession) -> NotificationAccepted:
            doc = new_notification(notify, client=client, template=template, kind="agency", account_id=account_id, sub=body.sub,
                                   personalisation=body.personalisation, reference=body.reference, priority=body.priority,
                                   due_at=due_at, now=now, channels=body.channels)
            await notify.db[NOTIFICATIONS_COLLECTION].insert_one(doc, session=session)
            if doc["status"] == NotificationStatus.SENDING:
                await notify.publish_many(session, [dispatch_event(notify, [doc["_id"]], doc["priority"])])
            return NotificationAccepted(notification_id=doc["_id"], status=doc["status"], template_id=template["template_id"],
                                        template_version=template["version"], reference=body.reference)

        return work

    answer, created = await idempotency.once(notify, agency, idempotency_key, body, NotificationAccepted, prepare)
    if created:
        NOTIFICATIONS_CREATED.labels("single").inc()
    return answer, created


def view(doc: dict[str, Any]) -> Notification:
    return Notification(
        notification_id=doc["_id"], status=doc["status"], sub=doc["sub"], reference=doc.get("reference"),
        template_id=doc["template_id"], template_version=doc["template_version"], priority=doc["priority"],
        job_id=doc.get("job_id"), created_at=doc["created_at"].isoformat(),
        timeline={k: v.isoformat() for k, v in doc.get("timeline", {}).items()},
        due_at=doc["due_at"].isoformat() if doc["status"] == NotificationStatus.CREATED else None,
        reason=doc.get("reason") or None, channel=doc.get("channel"))


async def status(notify: Notify, agency: Agency, notification_id: str) -> Notification:
    doc = await notify.db[NOTIFICATIONS_COLLECTION].find_one({"_id": notification_id, "client_id": agency.client_id})
    if doc is None:
        raise NotFound("no such notification for this agency")
    return view(doc)
