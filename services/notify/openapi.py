"""notify's public operations, declared from the models its handlers validate with (merged by the gateway).

`GET /v1/inbox/stream` (server-sent events) is documented in docs/api.md and
left out here: an endless event stream has no response schema a generic
client (or schemathesis) could check, only hang on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from libs.service.openapi import DEVICE_AUTH_ERRORS, JSON_BODY_ERRORS, Operation

from .callbacks import CallbackBody
from .jobs import BatchBody
from .notifications import NotificationBody
from .preferences import PreferencesBody, QuietHours
from .statuses import JobStatus, NotificationStatus
from .templates import Content, TemplateBody

AGENCY_AUTH_ERRORS = {
    401: "no, invalid or expired access token (WWW-Authenticate: Bearer)",
    403: "the token lacks the notify scope, or is not the agency's own client-credentials token",
}


class Template(BaseModel):
    template_id: str
    version: int
    name: str
    placeholders: list[str]
    content: dict[str, Content]
    created_at: str


class TemplateList(BaseModel):
    templates: list[Template]


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
    priority: Literal["normal", "high"]
    job_id: str | None = None
    created_at: str
    timeline: dict[str, str]
    due_at: str | None = None
    reason: str | None = None


class JobAccepted(BaseModel):
    job_id: str
    total: int
    status: Literal["accepted"]
    template_id: str
    template_version: int


class JobProgress(BaseModel):
    job_id: str
    status: JobStatus
    total: int
    unknown_recipients: int | None = None
    template_id: str
    template_version: int
    created_at: str
    counts: dict[str, int]
    processed: int
    finished: bool


class Callback(BaseModel):
    url: str
    updated_at: str


class JWKS(BaseModel):
    keys: list[dict[str, str]]


class InboxItem(BaseModel):
    id: str
    notification_id: str
    from_: str = Field(alias="from", description="the agency's name, or Harbour ID for platform messages")
    client_id: str | None
    kind: Literal["agency", "platform"]
    priority: Literal["normal", "high"]
    language: str
    subject: str
    body: str
    delivered_at: str
    read_at: str | None


class Inbox(BaseModel):
    messages: list[InboxItem]


class Preferences(BaseModel):
    language: Literal["en", "zh-HK", "zh-CN"] | None
    effective_language: Literal["en", "zh-HK", "zh-CN"]
    channels: list[Literal["inbox", "push"]]
    opted_out: list[str]
    quiet_hours: QuietHours | None


IDEMPOTENCY = ("An `Idempotency-Key` header makes the request safe to retry: the same key with the same body answers 200 with "
               "what the first request created; with a different body, 422 idempotency-key-reused.")

OPERATIONS = (
    Operation("POST", "/v1/templates", "Create a template (version 1)", ("notifications",), request_model=TemplateBody,
              responses={201: Template, **JSON_BODY_ERRORS, **AGENCY_AUTH_ERRORS,
                         400: "template syntax error, undeclared placeholder, or a template that cannot render",
                         422: "the body does not match the model, or a trial render goes over the rendering limits "
                              "(`template-too-costly`: output size, loop iterations, calls, filter widths)"},
              security=("bearer",)),
    Operation("GET", "/v1/templates", "The agency's templates (latest versions)", ("notifications",),
              responses={200: TemplateList, **AGENCY_AUTH_ERRORS}, security=("bearer",)),
    Operation("GET", "/v1/templates/{template_id}", "A template: its latest version, or `?version=n`", ("notifications",),
              responses={200: Template, **AGENCY_AUTH_ERRORS, 400: "version is not a positive integer", 404: "no such template"},
              query_params=(("version", {"type": "integer", "minimum": 1}, False),), security=("bearer",)),
    Operation("PUT", "/v1/templates/{template_id}", "Write a new version of a template", ("notifications",), request_model=TemplateBody,
              responses={201: Template, **JSON_BODY_ERRORS, **AGENCY_AUTH_ERRORS, 400: "as for creation", 404: "no such template",
                         409: "a concurrent version"},
              security=("bearer",)),
    Operation("POST", "/v1/notifications", "Send a template to a citizen known by their pairwise sub", ("notifications",),
              request_model=NotificationBody, description=IDEMPOTENCY,
              responses={201: NotificationAccepted, 200: NotificationAccepted, **JSON_BODY_ERRORS, **AGENCY_AUTH_ERRORS,
                         400: "missing-placeholder (lists `placeholders`), schedule-too-far, bad-idempotency-key",
                         404: "no such template (version)", 409: "the agency is not known to notify yet (Retry-After)",
                         422: "invalid body, unknown-recipient, or idempotency-key-reused"},
              security=("bearer",)),
    Operation("POST", "/v1/notifications/batch", "Send a template to up to 10,000 citizens: a job", ("notifications",),
              request_model=BatchBody, description=IDEMPOTENCY,
              responses={201: JobAccepted, 200: JobAccepted, **JSON_BODY_ERRORS, **AGENCY_AUTH_ERRORS,
                         400: "missing-placeholder (lists `recipients` with their `missing` names)",
                         404: "no such template (version)", 409: "the agency is not known to notify yet (Retry-After)",
                         422: "invalid body or idempotency-key-reused"},
              security=("bearer",)),
    Operation("GET", "/v1/notifications/batch/{job_id}", "A job's progress: counts by status", ("notifications",),
              responses={200: JobProgress, **AGENCY_AUTH_ERRORS, 404: "no such job"}, security=("bearer",)),
    Operation("GET", "/v1/notifications/{notification_id}", "A notification's status and timeline", ("notifications",),
              responses={200: Notification, **AGENCY_AUTH_ERRORS, 404: "no such notification"}, security=("bearer",)),
    Operation("PUT", "/v1/notifications/callback", "Register the agency's status callback URL", ("notifications",),
              request_model=CallbackBody, responses={200: Callback, **JSON_BODY_ERRORS, **AGENCY_AUTH_ERRORS,
                                                     422: "the body does not match the model, or the URL is refused (`callback-url-refused`): "
                                                          "not https, or its host is, or resolves to, a private, loopback, link-local or "
                                                          "mapped address, or does not resolve"},
              security=("bearer",)),
    Operation("GET", "/v1/notifications/callback", "The registered status callback URL", ("notifications",),
              responses={200: Callback, **AGENCY_AUTH_ERRORS, 404: "none registered"}, security=("bearer",)),
    Operation("DELETE", "/v1/notifications/callback", "Stop status callbacks", ("notifications",),
              responses={204: None, **AGENCY_AUTH_ERRORS}, security=("bearer",)),
    Operation("GET", "/v1/notifications/jwks", "The keys that sign status callbacks (JWKS)", ("notifications",), responses={200: JWKS}),
    Operation("GET", "/v1/inbox", "The citizen's inbox, newest first (`?unread=true`)", ("inbox",),
              query_params=(("unread", {"type": "boolean"}, False),),
              responses={200: Inbox, **DEVICE_AUTH_ERRORS, 400: "unread is not true or false, or an unknown query parameter"}, security=("deviceToken",)),
    Operation("POST", "/v1/inbox/{item_id}/read", "Mark a message read", ("inbox",),
              responses={200: InboxItem, **DEVICE_AUTH_ERRORS, 404: "no such message"}, security=("deviceToken",)),
    Operation("GET", "/v1/preferences", "The citizen's notification preferences", ("inbox",),
              responses={200: Preferences, **DEVICE_AUTH_ERRORS}, security=("deviceToken",)),
    Operation("PUT", "/v1/preferences", "Replace the citizen's notification preferences", ("inbox",), request_model=PreferencesBody,
              responses={200: Preferences, **JSON_BODY_ERRORS, **DEVICE_AUTH_ERRORS}, security=("deviceToken",)),
)
