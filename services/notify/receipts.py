"""The dispatcher's e-mail and SMS sender: due messages to their adapters, and the providers' receipts into statuses.

A message the provider accepted moves its notification from `sent` to
`delivered`; a permanent refusal moves it to `failed` at once, with the
reason; a temporary one is retried with back-off (libs/retry_queue.py) and
fails the notification after the last attempt. Each move is made in one
transaction with the message's final queue state, by `_id`, only from a
status that may take it (a
notification read in the inbox meanwhile stays `read`), through the same
path as delivery's (delivery.set_status: the job's counters, metrics, the
agency's topic event and callback).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from libs.retry_queue import Failure, RetryQueue
from libs.service.logging import get_logger

from .collections import NOTIFICATIONS
from .context import Notify
from .delivery import set_status
from .messaging import ChannelRefused, ChannelUnavailable, MessageAdapter, opened_message
from .metrics import CHANNEL_DELIVERIES
from .statuses import NOTIFICATION, NotificationStatus

log = get_logger("harbour.notify.receipts")


async def send_due_messages(notify: Notify, queue: RetryQueue, adapters: dict[str, MessageAdapter], *, limit: int = 20) -> int:
    """Hand the due e-mails and SMS to their adapters (at once, up to `limit`) and record each outcome; how many were due."""
    due = await queue.claim_due(notify.clock.now(), limit)
    if due:
        await asyncio.gather(*(_send_one(notify, queue, adapters, doc) for doc in due))
    return len(due)


async def _send_one(notify: Notify, queue: RetryQueue, adapters: dict[str, MessageAdapter], doc: dict[str, Any]) -> None:
    channel = doc["channel"]
    adapter = adapters.get(channel)
    try:
        if adapter is None:
            raise ChannelUnavailable(f"no {channel} adapter")
        receipt = await adapter.send(opened_message(notify.cipher, doc))
    except ChannelRefused as exc:
        CHANNEL_DELIVERIES.labels(channel, "failed").inc()
        await _receipt(notify, queue, doc, {"state": queue.given_up, "last_error": str(exc)},
                       NotificationStatus.FAILED, f"{channel}-refused: {exc}")
        return
    except ChannelUnavailable as exc:
        given_up = doc["attempts"] >= queue.backoff.max_attempts
        CHANNEL_DELIVERIES.labels(channel, "failed" if given_up else "retry").inc()
        log.info("channel message not taken", message_id=doc["_id"], channel=channel, attempts=doc["attempts"], given_up=given_up,
                 error=str(exc))
        if given_up:
            await _receipt(notify, queue, doc, {"state": queue.given_up, "last_error": str(exc)},
                           NotificationStatus.FAILED, f"{channel}-undeliverable: {exc}")
        else:
            await queue.failed(Failure(doc, str(exc)), notify.clock.now())
        return
    CHANNEL_DELIVERIES.labels(channel, "delivered").inc()
    await _receipt(notify, queue, doc, {"state": queue.done, "sent_at": notify.clock.now(), "receipt": receipt},
                   NotificationStatus.DELIVERED, None)


async def _receipt(notify: Notify, queue: RetryQueue, doc: dict[str, Any], outcome: dict[str, Any], status: NotificationStatus,
                   reason: str | None) -> None:
    """In one transaction: the message's final state in its queue, and its notification's `status` (with `reason`) if it
    is in a status that may move to it. A sender that dies after the provider took the message and before this commit
    leaves the message claimed: it is sent again when its lease ends (at least once), and that receipt finds the
    notification moved on already if the first one got through."""

    async def work(session: AsyncClientSession) -> None:
        await queue.collection.update_one({"_id": doc["_id"]}, {"$set": outcome}, session=session)
        notification = await notify.db[NOTIFICATIONS].find_one({"_id": doc["notification_id"]}, session=session)
        if notification is None or not NOTIFICATION.allows(notification["status"], status):
            return  # read in the inbox before the receipt came (or already moved by an earlier claim of this message)
        await set_status(notify, session, [notification | ({"reason": reason[:300]} if reason else {})], status, notify.clock.now())

    await notify.transaction(work)
