"""The live inbox: server-sent events, one `message` per new item; a few streams per device, one more is 429."""

from __future__ import annotations

import asyncio
import json

from pymongo import monitoring

from services.notify.api import INBOX_FEED
from tests.support.database import CommandRecorder
from tests.support.polling import eventually

from .conftest import problem


async def next_message(response) -> dict:
    event: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith(("id: ", "event: ", "data: ")):
            name, _, value = line.partition(": ")
            event[name] = value
        elif not line and event.get("event") == "message":
            return {"id": event["id"], **json.loads(event["data"])}


async def test_a_new_message_arrives_on_the_open_stream(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.dispatch()  # the first sign-in alert, before the stream opens
    stream = await notify.http.get("/v1/inbox/stream", headers=notify.device_token(citizen))
    try:
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        assert await stream.content.readline() == b": connected\n"

        status = await notify.delivered(agency, citizen)

        message = await next_message(stream)
        while message["kind"] != "agency":
            message = await next_message(stream)
        assert message["notification_id"] == status["notification_id"] and message["subject"] == "Renew licence DL-42"
        assert message["id"].startswith("msg-") and message["from"] == "Transport Department"
    finally:
        stream.close()


async def test_one_stream_more_than_a_device_may_hold_is_refused(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    streams = [await notify.http.get("/v1/inbox/stream", headers=notify.device_token(citizen)) for _ in range(3)]
    try:
        assert [s.status for s in streams] == [200, 200, 200]
        refused = await notify.http.get("/v1/inbox/stream", headers=notify.device_token(citizen))
        assert refused.status == 429 and refused.headers["Retry-After"] == "5"
        answer = await problem(refused)
        assert (answer["type"].rsplit("/", 1)[1], answer["title"]) == ("too-many-streams", "Too many streams")
    finally:
        for stream in streams:
            stream.close()


INBOX_READS = CommandRecorder()  # registered when the module is collected, before any client of notify's is made
monitoring.register(INBOX_READS)


async def test_an_open_stream_with_nothing_new_asks_the_database_nothing(notify):
    # Each open stream asked for new items every half second, found or not: two queries a second per citizen with the
    # app open. Now one change stream per process wakes a stream when an item for its account is inserted.
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    await notify.dispatch()
    stream = await notify.http.get("/v1/inbox/stream", headers=notify.device_token(citizen))
    try:
        assert await stream.content.readline() == b": connected\n"
        first = await next_message(stream)  # the first look, at the start: what came before (the sign-in alert)
        assert first["kind"] == "platform"
        # The feed's change stream open (opening it wakes every stream once: a gap is looked at), that look done.
        feed = notify.http.app[INBOX_FEED]
        await eventually(lambda: feed.mode == "change-stream"
                         and not any(woken.is_set() for woken in feed.waiters.get(citizen.account_id, ())), timeout_s=10)
        with INBOX_READS.recording(notify.ctx.db.name) as seen:
            await asyncio.sleep(2.0)  # four of the old polls
        # At most the look the change stream's opening asked for, if it was still on its way; polling asked four times.
        assert len([c for name, c, _ in seen if name == "find" and c == "inbox"]) <= 1

        status = await notify.delivered(agency, citizen)

        message = await next_message(stream)
        assert message["notification_id"] == status["notification_id"]
    finally:
        stream.close()
