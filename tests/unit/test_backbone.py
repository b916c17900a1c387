"""libs.backbone.ServiceContext: one transaction helper, events with the service's own source, the clock seam."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from libs.backbone import ServiceContext
from libs.clock import FrozenClock, SystemClock
from libs.events.envelope import CloudEvent
from libs.events.topics import AUDIT, CLIENTS

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


class FakeCollection:
    def __init__(self) -> None:
        self.documents: list[dict] = []
        self.sessions: list[object] = []

    async def insert_one(self, document: dict, *, session=None) -> None:
        self.documents.append(document)
        self.sessions.append(session)

    async def insert_many(self, documents: list[dict], *, session=None) -> None:
        self.documents.extend(documents)
        self.sessions.append(session)


class FakeDatabase(dict):
    name = "parcels"

    def __missing__(self, name: str) -> FakeCollection:
        self[name] = FakeCollection()
        return self[name]


class FakeSession:
    async def with_transaction(self, work, **options):
        return await work(self)


class FakeMongo:
    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []

    def start_session(self):
        mongo = self

        class Started:
            async def __aenter__(self):
                mongo.sessions.append(FakeSession())
                return mongo.sessions[-1]

            async def __aexit__(self, *exc):
                return False

        return Started()


class FakeRelay:
    def __init__(self) -> None:
        self.woken = 0

    def notify(self) -> None:
        self.woken += 1


@dataclasses.dataclass(frozen=True)
class Parcels(ServiceContext):
    source = "/parcels"

    settings: dict
    depot: str


def parcels(**overrides) -> Parcels:
    values = dict(settings={}, mongo=FakeMongo(), db=FakeDatabase(), relay=FakeRelay(), depot="north")
    values.update(overrides)
    return Parcels(**values)


def outbox_events(ctx: Parcels) -> list[tuple[str, str, CloudEvent]]:
    return [(doc["topic"], doc["key"], CloudEvent.from_json(doc["value"])) for doc in ctx.db["outbox"].documents]


def test_a_context_without_a_source_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Nameless(ServiceContext):
        pass

    with pytest.raises(TypeError, match="source"):
        Nameless(settings={}, mongo=FakeMongo(), db=FakeDatabase(), relay=FakeRelay())


def test_the_clock_defaults_to_the_system_clock_and_is_keyword_only():
    assert isinstance(parcels().clock, SystemClock)
    clock = FrozenClock(NOW)
    assert parcels(clock=clock).clock is clock
    # The service's own fields follow the shared ones without defaults.
    assert [f.name for f in dataclasses.fields(Parcels)] == ["settings", "mongo", "db", "relay", "clock", "depot"]


async def test_transaction_runs_the_work_once_then_what_it_registered_for_after_the_commit():
    # The relay is woken that way by the outbox when the work published events (tests/integration/test_idle_cost.py).
    ctx = parcels()
    seen, ran = [], []

    async def work(session):
        seen.append(session)
        assert ctx.after_commit("after", lambda: ran.append("after"))
        assert ran == []  # not inside the transaction
        return "done"

    assert await ctx.transaction(work) == "done"
    assert seen == ctx.mongo.sessions and ran == ["after"]
    assert not ctx.after_commit("outside", lambda: ran.append("outside")) and ran == ["after"]


async def test_publish_adds_an_event_with_the_service_source_in_the_callers_session():
    ctx = parcels(clock=FrozenClock(NOW))

    async def work(session):
        return await ctx.publish(session, CLIENTS, "client.updated", "c1", {"name": "x"})

    event = await ctx.transaction(work)
    [(topic, key, stored)] = outbox_events(ctx)
    assert (topic, key) == ("clients.events", "c1")
    assert stored == event
    assert (stored.source, stored.type, stored.subject, stored.data, stored.time) == (
        "/parcels", "client.updated", "c1", {"name": "x"}, NOW)
    assert ctx.db["outbox"].sessions == ctx.mongo.sessions


async def test_publish_takes_a_topic_name_and_a_partition_key():
    ctx = parcels()
    await ctx.publish(object(), "agency.c1.events", "parcel.sent", "p1", key="c1")
    [(topic, key, stored)] = outbox_events(ctx)
    assert (topic, key, stored.data) == ("agency.c1.events", "c1", {})


async def test_publish_many_writes_events_built_with_event():
    ctx = parcels(clock=FrozenClock(NOW))
    await ctx.publish_many(object(), [(CLIENTS, ctx.event("parcel.sent", "p1", {"n": 1})),
                                      ("agency.c1.events", ctx.event("parcel.sent", "p2"))])
    assert [(t, e.subject, e.source, e.time) for t, _, e in outbox_events(ctx)] == [
        ("clients.events", "p1", "/parcels", NOW), ("agency.c1.events", "p2", "/parcels", NOW)]


async def test_audit_records_under_the_service_name():
    ctx = parcels()
    await ctx.audit(object(), subject="p1", action="parcel.open", actor="clerk", reason="customs")
    [(topic, _, stored)] = outbox_events(ctx)
    assert topic == AUDIT.name
    assert (stored.source, stored.type) == ("/parcels", "audit.recorded")
    assert stored.data == {"action": "parcel.open", "actor": "clerk", "outcome": "success", "reason": "customs"}
    assert json.loads(ctx.db["outbox"].documents[0]["value"])["subject"] == "p1"


def test_every_service_context_builds_on_it():
    from services.formfill.context import Formfill
    from services.notify.context import Notify
    from services.signing.context import Signing

    for cls, source in ((Formfill, "/formfill"), (Notify, "/notify"), (Signing, "/signing")):
        assert issubclass(cls, ServiceContext)
        assert cls.source == source
        names = [f.name for f in dataclasses.fields(cls)]
        assert {"settings", "mongo", "db", "relay", "clock"} <= set(names)


def test_auth_context_builds_on_it():
    from services.auth.context import Auth

    assert issubclass(Auth, ServiceContext) and Auth.source == "/auth"
