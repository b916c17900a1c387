"""E-mail and SMS behind one adapter interface: the dispatcher hands a message over; a provider takes it or refuses it.

A notification whose channel (preferences.choose_channel) is `email` or `sms`
is written to the inbox and becomes `sent`; its message waits, sealed, in the
`channel_messages` retry queue (libs/retry_queue.py), written in the chunk's
transaction. The dispatcher's sender (receipts.py) claims due messages and
hands each to its channel's adapter:

- `send` returns: the provider accepted it (its receipt: the SMTP server's
  answer, the SMS gateway's message id) -> the notification is `delivered`;
- `ChannelRefused`: a permanent refusal (SMTP 5xx, an unallocated number)
  -> `failed` at once, with the reason;
- `ChannelUnavailable`: a temporary one (SMTP 4xx, no connection, a
  timeout) -> retried with exponential back-off, `failed` after the last try.

`SmtpEmailAdapter` speaks SMTP with aiosmtplib (locally to the dev stack's
server, libs/devstack/smtp_server.py; in production to the mail relay,
STARTTLS and credentials from the settings). `LocalSmsSink` writes each SMS to
a folder as one JSON file, which is what the local platform and the tests read;
a real SMS gateway implements the same `send`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher
from libs.retry_queue import Backoff, RetryQueue

from .collections import CHANNEL_MESSAGES
from .statuses import PushState

# A claimed message is due again after this long if its sender died before recording the outcome.
MESSAGE_LEASE_S = 60.0
# Numbers in this (unassigned) country code are refused by the local SMS sink: the tests' refused recipient.
REFUSED_SMS_PREFIX = "+999"
ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")


class ChannelRefused(Exception):
    """The provider refused the message for good (e.g. SMTP 550 mailbox unavailable): not retried."""


class ChannelUnavailable(Exception):
    """The provider could not take the message now (e.g. SMTP 451, connection refused): retried later."""


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    notification_id: str
    channel: str  # email | sms
    address: str  # the e-mail address or E.164 number (personal data: sealed at rest, never logged)
    subject: str
    body: str
    language: str
    sender_name: str  # the agency's name, or Harbour ID


class MessageAdapter(Protocol):
    channel: str

    async def send(self, message: OutboundMessage) -> str:
        """Hand one message over; return the provider's receipt, or raise ChannelRefused / ChannelUnavailable."""
        ...


class SmtpEmailAdapter:
    """E-mail over SMTP (aiosmtplib): one connection per message, bounded in time."""

    channel = "email"

    def __init__(self, *, host: str, port: int, sender: str, timeout_s: float = 10.0, starttls: bool = False,
                 username: str = "", password: str = "") -> None:
        self.host, self.port, self.sender, self.timeout_s = host, port, sender, timeout_s
        self.starttls, self.username, self.password = starttls, username, password

    def message(self, message: OutboundMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = make_msgid(idstring=message.message_id, domain=self.sender.rpartition("@")[2].strip("> ") or None)
        mail["X-Harbour-Notification"] = message.notification_id
        mail.set_content(f"{message.body}\n\n— {message.sender_name}, through Harbour ID\n")
        mail["Content-Language"] = message.language  # after set_content, which replaces the Content-* headers
        return mail

    async def send(self, message: OutboundMessage) -> str:
        import aiosmtplib  # only the dispatcher sends mail: the API process never loads it

        try:
            errors, answer = await aiosmtplib.send(
                self.message(message), hostname=self.host, port=self.port, timeout=self.timeout_s,
                start_tls=self.starttls, use_tls=False,
                username=self.username or None, password=self.password or None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _by_code(min((e.code for e in exc.recipients), default=550), "; ".join(e.message for e in exc.recipients)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, exc.message) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise ChannelUnavailable(f"smtp {type(exc).__name__}: {_without_addresses(str(exc))[:200]}") from None
        if errors:  # a single recipient: refused ones raise above; kept for completeness
            code, text = next(iter(errors.values()))
            raise _by_code(code, text)
        return f"smtp 250 {_without_addresses(answer)[:200]}"


def _without_addresses(text: str) -> str:
    """A server's answer without the addresses it may echo: reasons reach the agency, the logs and the metrics."""
    return ADDRESS.sub("<address>", text.strip())


def _by_code(code: int, text: str) -> Exception:
    reason = f"smtp {code} {_without_addresses(text)[:200]}"
    return ChannelRefused(reason) if 500 <= code < 600 else ChannelUnavailable(reason)


class LocalSmsSink:
    """What a phone would receive by SMS: one JSON file per message in `directory` (written whole, then renamed)."""

    channel = "sms"

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def send(self, message: OutboundMessage) -> str:
        if message.address.startswith(REFUSED_SMS_PREFIX):
            raise ChannelRefused("sms unallocated number")
        receipt = f"sms-{secrets.token_hex(8)}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            final = self.directory / f"{message.message_id}.json"
            partial = self.directory / f".{message.message_id}.{receipt}.tmp"
            partial.write_text(json.dumps({"to": message.address, "from": message.sender_name, "text": f"{message.subject}\n{message.body}",
                                           "language": message.language, "notification_id": message.notification_id,
                                           "receipt": receipt}, ensure_ascii=False))
            os.replace(partial, final)  # a retried message overwrites its own file: one per message
        except OSError as exc:
            raise ChannelUnavailable(f"sms sink {type(exc).__name__}") from None
        return receipt


def adapters_for(settings: Any) -> dict[str, MessageAdapter]:
    """The e-mail and SMS adapters the settings name (NotifySettings: email_adapter, sms_adapter)."""
    adapters: dict[str, MessageAdapter] = {}
    if settings.email_adapter == "smtp":
        adapters["email"] = SmtpEmailAdapter(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                                             timeout_s=settings.smtp_timeout_s, starttls=settings.smtp_starttls,
                                             username=settings.smtp_username, password=settings.smtp_password)
    else:
        raise ValueError(f"unknown email adapter {settings.email_adapter!r} (HARBOUR_NOTIFY_EMAIL_ADAPTER)")
    if settings.sms_adapter == "local":
        adapters["sms"] = LocalSmsSink(settings.sms_sink_dir)
    else:
        raise ValueError(f"unknown sms adapter {settings.sms_adapter!r} (HARBOUR_NOTIFY_SMS_ADAPTER)")
    return adapters


def message_id(notification_id: str) -> str:
    """One message per notification: its id derives from the notification's, so a redelivered chunk queues none twice."""
    return "chm-" + notification_id.removeprefix("ntf-")


def queued_message(cipher: FieldCipher, message: OutboundMessage, now: datetime) -> dict[str, Any]:
    """The queue document: address and content sealed together, bound to the message id."""
    fields = asdict(message)
    opened = {name: fields[name] for name in ("address", "subject", "body", "sender_name")}
    return {"_id": message.message_id, "notification_id": message.notification_id, "channel": message.channel,
            "language": message.language, "sealed": cipher.encrypt_record(opened, record_id=message.message_id),
            **RetryQueue.queued(now), "created_at": now}


def opened_message(cipher: FieldCipher, doc: dict[str, Any]) -> OutboundMessage:
    opened = cipher.decrypt_record(doc["sealed"], record_id=doc["_id"])
    return OutboundMessage(message_id=doc["_id"], notification_id=doc["notification_id"], channel=doc["channel"],
                           address=opened["address"], subject=opened["subject"], body=opened["body"], language=doc["language"],
                           sender_name=opened["sender_name"])


def message_queue(db: AsyncDatabase, *, max_attempts: int, backoff_s: float) -> RetryQueue:
    """E-mails and SMS waiting for their provider: attempt n that fails waits backoff * 2**(n-1) s; the last one fails."""
    return RetryQueue(db[CHANNEL_MESSAGES], Backoff(backoff_s, max_attempts), done=PushState.SENT, given_up=PushState.FAILED,
                      lease_s=MESSAGE_LEASE_S)
