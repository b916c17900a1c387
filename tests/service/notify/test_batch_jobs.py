"""A batch is a job: accepted at once, expanded by the dispatcher into one notification per recipient, counted as it goes."""

from __future__ import annotations

from services.notify.collections import JOBS, NOTIFICATIONS, SUBJECTS

from .conftest import VALUES, problem


async def test_a_job_is_expanded_delivered_and_counted_through_to_read(notify):
    agency = await notify.agency()
    citizens = [await notify.citizen(agency) for _ in range(3)]
    opted_out = citizens[2]
    await notify.preferences(opted_out, {"opted_out": [agency.client_id]})
    template = await notify.template(agency)
    recipients = [{"sub": c.sub, "personalisation": VALUES, "reference": f"R-{i}"} for i, c in enumerate(citizens)]
    recipients.append({"sub": "nobody", "personalisation": VALUES})

    accepted = await notify.send_batch(agency, {"template_id": template["template_id"], "recipients": recipients})

    assert accepted.status == 201
    job = await accepted.json()
    assert job == {"job_id": job["job_id"], "total": 4, "status": "accepted", "template_id": template["template_id"],
                   "template_version": 1}
    assert accepted.headers["Location"] == f"/v1/notifications/batch/{job['job_id']}"
    assert (await notify.progress(agency, job["job_id"]))["processed"] == 0

    await notify.dispatch()

    progress = await notify.progress(agency, job["job_id"])
    assert progress["status"] == "expanded" and progress["unknown_recipients"] == 1
    assert progress["counts"] == {"delivered": 2, "failed": 1, "suppressed": 1, "read": 0, "pending": 0}
    assert (progress["processed"], progress["finished"]) == (4, True)

    [item] = [m for m in await notify.inbox(citizens[0]) if m["kind"] == "agency"]
    read = await notify.http.post(f"/v1/inbox/{item['id']}/read", headers=notify.device_token(citizens[0]))
    assert read.status == 200
    assert (await notify.progress(agency, job["job_id"]))["counts"] == {"delivered": 1, "failed": 1, "suppressed": 1, "read": 1,
                                                                          "pending": 0}


async def test_an_expansion_run_twice_creates_nothing_twice(notify):
    agency = await notify.agency()
    citizen = await notify.citizen(agency)
    template = await notify.template(agency)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": citizen.sub, "personalisation": VALUES}] * 3})
    job_id = (await accepted.json())["job_id"]
    await notify.dispatch()
    # As if the dispatcher died after committing and the job event came again: the job is `expanded` and stays so.
    await notify.ctx.db[JOBS].update_one({"_id": job_id}, {"$set": {"status": "accepted"}})
    notify.handled.clear()
    await notify.dispatch()

    assert await notify.ctx.db[NOTIFICATIONS].count_documents({"job_id": job_id}) == 3
    assert len([m for m in await notify.inbox(citizen) if m["kind"] == "agency"]) == 3
    assert (await notify.progress(agency, job_id))["counts"]["delivered"] == 3


async def test_recipients_lacking_placeholders_are_listed_and_nothing_is_stored(notify):
    agency = await notify.agency()
    template = await notify.template(agency)
    recipients = [{"sub": "a", "personalisation": VALUES}, {"sub": "b", "personalisation": {"name": "Chan"}}]

    refused = await notify.send_batch(agency, {"template_id": template["template_id"], "recipients": recipients})

    assert refused.status == 400
    answer = await problem(refused)
    assert answer["type"].endswith("/missing-placeholder") and answer["placeholders"] == ["licence"]
    assert answer["recipients"] == [{"index": 1, "missing": ["licence"]}]
    assert await notify.ctx.db[JOBS].count_documents({}) == 0


async def test_another_agencys_job_is_not_found(notify):
    agency, other = await notify.agency(), await notify.agency(name="Water Supplies Department")
    template = await notify.template(agency)
    job_id = (await (await notify.send_batch(agency, {"template_id": template["template_id"],
                                                      "recipients": [{"sub": "a", "personalisation": VALUES}]})).json())["job_id"]

    answer = await notify.http.get(f"/v1/notifications/batch/{job_id}", headers=notify.agency_token(other))

    assert answer.status == 404 and (await problem(answer))["detail"] == "no such job for this agency"


async def test_a_chunk_delivers_to_the_accounts_its_expansion_resolved_without_reading_the_subjects_again(notify):
    agency = await notify.agency()
    citizens = [await notify.citizen(agency) for _ in range(2)]
    template = await notify.template(agency)
    accepted = await notify.send_batch(agency, {"template_id": template["template_id"],
                                                "recipients": [{"sub": c.sub, "personalisation": VALUES} for c in citizens]})
    job_id = (await accepted.json())["job_id"]
    [chunk] = await notify.expand(job_id)
    accounts = {doc["_id"]: doc["account_id"] async for doc in notify.ctx.db[SUBJECTS].find({"_id": {"$in": [c.sub for c in citizens]}})}
    assert chunk.data["account_ids"] == [accounts[c.sub] for c in citizens]

    # The subjects gone before the chunk is delivered: a chunk that looked them up again would find nobody.
    await notify.ctx.db[SUBJECTS].delete_many({"_id": {"$in": [c.sub for c in citizens]}})
    await notify.dispatch()

    assert (await notify.progress(agency, job_id))["counts"]["delivered"] == 2
    for citizen in citizens:
        [item] = [m for m in await notify.inbox(citizen) if m["kind"] == "agency"]
        assert item["client_id"] == agency.client_id
    # Each notification carries the account its expansion resolved.
    assert {doc["sub"]: doc["account_id"] async for doc in notify.ctx.db[NOTIFICATIONS].find({"job_id": job_id})} == accounts
