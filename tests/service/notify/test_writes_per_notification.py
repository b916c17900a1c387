"""A batch's notification costs two document writes in notify's database, whatever the batch's size (issue 17).

Counted on the real database from its oplog (one entry per document inserted, updated or deleted) around two
batches of different sizes, pushes sent included: the difference divided by the difference in recipients is
what one more notification writes, free of what a job writes once (its document, its events, its counters).
Today that is its notification (inserted once, when it is delivered, in its final status) and its inbox item; a
chunk's pushes are one document. (It was three: the notification inserted at expansion and updated at delivery.) `push_log` is left out: it is the local push adapter's record of what a phone would receive, the
provider's side (APNs or FCM in production), not notify's.
"""

from __future__ import annotations

from pymongo import monitoring

from ...support.database import CommandRecorder
from .conftest import VALUES

PROVIDER_RECORD = "push_log"
# Renewed on a timer by the outbox relay and the consumers, however many notifications there are.
LEASES = {"outbox_lease", "consumer_leases", "consumer_members"}
OUTBOX = "outbox"


async def _oplog_position(db):
    last = await db.client.local["oplog.rs"].find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    return last["ts"]


async def _written(db, since) -> dict[str, int]:
    """Documents written in notify's database since `since`, per collection.

    The outbox counts its events (inserts); the relay's marks on them (in flight, sent, verified: per event, so per
    chunk, not per notification) land at the relay's own pace, in one window or the next, and are left out.
    """
    counts: dict[str, int] = {}
    async for entry in db.client.local["oplog.rs"].find({"ts": {"$gt": since}, "ns": {"$regex": f"^{db.name}\\."}}, {"ns": 1, "op": 1}):
        collection = entry["ns"].split(".", 1)[1]
        if collection == OUTBOX and entry["op"] != "i":
            continue
        counts[collection] = counts.get(collection, 0) + 1
    return counts


async def _settle(notify) -> None:
    """Everything already queued (the citizens' welcome messages, their pushes) done before counting."""
    await notify.dispatch()
    while await notify.timed_work():
        pass


async def _batch_writes(notify, agency, template, citizens) -> dict[str, int]:
    await _settle(notify)
    since = await _oplog_position(notify.ctx.db)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": c.sub, "personalisation": VALUES} for c in citizens]})
    assert accepted.status == 201, await accepted.text()
    job_id = (await accepted.json())["job_id"]
    await _settle(notify)  # the pushes too, handed to the (local) provider
    progress = await notify.progress(agency, job_id)
    assert progress["counts"]["delivered"] == len(citizens) and progress["finished"]
    assert await notify.ctx.db["push_log"].count_documents({"notification_id": {"$regex": f"^ntf-{job_id.removeprefix('job-')}-"}}) \
        == len(citizens)
    return await _written(notify.ctx.db, since)


async def test_one_more_recipient_costs_two_writes(notify):
    agency = await notify.agency()
    template = await notify.template(agency)
    citizens = [await notify.citizen(agency) for _ in range(70)]

    small = await _batch_writes(notify, agency, template, citizens[:10])
    large = await _batch_writes(notify, agency, template, citizens[10:])

    def notify_writes(counts: dict[str, int]) -> int:
        return sum(n for collection, n in counts.items() if collection != PROVIDER_RECORD and collection not in LEASES)

    per_notification = (notify_writes(large) - notify_writes(small)) / (60 - 10)
    assert per_notification <= 2.0, (per_notification, small, large)
    # What they are: the notification (one insert, in its final status), the inbox item; pushes as one document per chunk.
    assert large["notifications"] == 60 and large["inbox"] == 60 and large.get("pushes", 0) == 0, large


# -- query shapes ---------------------------------------------------------------------------------------------------

FLOW = {"notifications", "inbox", "accounts", "preferences", "templates", "subjects", "jobs", "push_batches", "pushes", "push_log",
        "callbacks", "callback_urls"}


def _filters(seen) -> list[tuple[str, str, dict]]:
    """(command, collection, filter) of each find, update, delete and findAndModify among recorded commands."""
    filters: list[tuple[str, str, dict]] = []
    for name, collection, command in seen:
        if name == "find":
            filters.append((name, collection, command.get("filter", {})))
        elif name in ("update", "delete"):
            filters += [(name, collection, statement["q"]) for statement in command.get(name + "s", [])]
        elif name.lower() == "findandmodify":
            filters.append((name, collection, command.get("query", {})))
    return filters


QUERIES = CommandRecorder()  # registered before any client is made
monitoring.register(QUERIES)


def _stages(plan: dict) -> set[str]:
    stages = {plan.get("stage", "")}
    for key in ("inputStage", "queryPlan"):
        if key in plan:
            stages |= _stages(plan[key])
    for child in plan.get("inputStages", []):
        stages |= _stages(child)
    return stages


async def test_a_batch_is_delivered_with_queries_the_database_serves_from_an_index(notify):
    agency = await notify.agency()
    template = await notify.template(agency)
    citizens = [await notify.citizen(agency) for _ in range(5)]
    await _settle(notify)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": c.sub, "personalisation": VALUES} for c in citizens]})
    assert accepted.status == 201

    with QUERIES.recording(notify.ctx.db.name) as seen:
        await _settle(notify)  # expansion, delivery, the pushes

    flow = [(name, collection, query) for name, collection, query in _filters(seen) if collection in FLOW]
    assert {collection for _, collection, _ in flow} >= {"notifications", "inbox", "accounts", "subjects", "jobs"}
    assert not [q for q in flow if q[0].lower() == "findandmodify"], flow
    scans = []
    for name, collection, query in flow:
        explained = await notify.ctx.db.command("explain", {"find": collection, "filter": query}, verbosity="queryPlanner")
        if "COLLSCAN" in _stages(explained["queryPlanner"]["winningPlan"]):
            scans.append((name, collection, query))
    assert not scans, scans


# -- the job's recipients, read once ----------------------------------------------------------------------------------


class _JobReads(monitoring.CommandListener):
    """The job documents notify's finds return while `recording`: whether each came with its sealed recipients."""

    def __init__(self) -> None:
        self.recording: str | None = None
        self.requests: set[int] = set()
        self.with_recipients: list[bool] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording == event.database_name and event.command_name == "find" and event.command.get("find") == "jobs":
            self.requests.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self.requests:
            self.requests.discard(event.request_id)
            self.with_recipients += ["sealed" in doc for doc in event.reply["cursor"]["firstBatch"]]

    def failed(self, event) -> None:
        self.requests.discard(event.request_id)


JOB_READS = _JobReads()
monitoring.register(JOB_READS)


async def test_a_jobs_recipients_are_read_once_however_many_chunks(notify):
    """The job's sealed recipients (~800 KB for 10,000) come from the database for its expansion; each chunk reads the
    job without them, the dispatcher having them already."""
    agency = await notify.agency()
    template = await notify.template(agency)
    citizens = [await notify.citizen(agency) for _ in range(notify.ctx.settings.chunk_size + 1)]
    await _settle(notify)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": c.sub, "personalisation": VALUES} for c in citizens]})
    assert accepted.status == 201
    job_id = (await accepted.json())["job_id"]

    JOB_READS.with_recipients, JOB_READS.recording = [], notify.ctx.db.name
    try:
        await _settle(notify)  # the expansion, then two chunks
    finally:
        JOB_READS.recording = None

    progress = await notify.progress(agency, job_id)
    assert progress["counts"]["delivered"] == len(citizens) and progress["finished"], progress
    assert JOB_READS.with_recipients.count(True) == 1, JOB_READS.with_recipients
    assert JOB_READS.with_recipients.count(False) >= 2, JOB_READS.with_recipients  # one read per chunk, without them
