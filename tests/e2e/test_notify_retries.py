"""Retries are safe: the same `Idempotency-Key` creates one job and gets the same answer — at the same time, and
after the notify process that had the first request was killed with SIGKILL.

notify runs here as processes of the test's own (tests/support/own_notify.py: two API replicas on one database,
its dispatcher), on the test broker and database, so killing one disturbs no other test. The agency's token comes
from auth's stand-in. The kill lands exactly at the commit of the request's transaction, on either side of it: the
API reaches the database through tests/support/commit_cutter.py, which holds back that commit or the database's
answer to it. What was created is counted in notify's database.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest

from services.notify.collections import IDEMPOTENCY, JOBS, NOTIFICATIONS

from ..support.auth_stand_in import RelyingParty, auth_stand_in  # noqa: F401  (a fixture)
from ..support.commit_cutter import commit_cutter
from ..support.own_notify import OwnNotify, own_notify
from ..support.polling import eventually

pytestmark = pytest.mark.e2e
BATCH = "/v1/notifications/batch"
TEMPLATE = {"name": "Tax reminder", "placeholders": ["year"],
            "content": {"en": {"subject": "Tax return {{ year }}", "body": "Please file your {{ year }} return."}}}
CONCURRENT = 8
KILL_TEST_RECIPIENTS = 2_000


async def _template(notify: OwnNotify, agency: RelyingParty) -> str:
    async with aiohttp.ClientSession() as http, http.post(notify.api_url() + "/v1/templates", json=TEMPLATE,
                                                          headers=notify.token(agency)) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["template_id"]


def _batch(template_id: str, recipients: int) -> dict:
    run = uuid.uuid4().hex[:8]
    return {"template_id": template_id,
            "recipients": [{"sub": f"sub-{run}-{i}", "personalisation": {"year": "2026"}} for i in range(recipients)]}


async def _post(http: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    async with http.post(url + BATCH, json=body, headers=headers) as response:
        return response.status, await response.read(), dict(response.headers)


async def test_concurrent_batches_with_one_key_create_one_job_and_all_get_the_same_answer(infra, auth_stand_in):  # noqa: F811
    async with own_notify(infra, auth_stand_in) as notify:
        await asyncio.gather(notify.start_api(0), notify.start_api(1))
        agency = await notify.agency()
        body = _batch(await _template(notify, agency), 1_000)
        headers = {**notify.token(agency), "Idempotency-Key": str(uuid.uuid4())}

        # The same request, 8 at once, spread over two replicas of the API (each retried while it is 503, as a
        # client does: a request shed under load creates nothing).
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(*(_retry(http, notify.api_urls[i % 2], body, headers) for i in range(CONCURRENT)))
            other = await _post(http, notify.api_url(1), {**body, "priority": "high"}, headers)

        # One answer for all: the same status, body and Location; one of them created it, the others replay it.
        assert {(status, content, h["Location"]) for status, content, h in answers} == {
            (answers[0][0], answers[0][1], answers[0][2]["Location"])}, answers
        status, content, _ = answers[0]
        assert status == 201, content
        accepted = json.loads(content)
        assert accepted["total"] == 1_000 and accepted["status"] == "accepted"
        assert sorted(h.get("Idempotent-Replayed", "") for _, _, h in answers) == [""] + ["true"] * (CONCURRENT - 1)
        # The same key with another request is refused, as problem+json.
        assert other[0] == 422 and other[2]["Content-Type"].startswith("application/problem+json")
        assert json.loads(other[1])["type"].endswith("/idempotency-key-reused")

        async with notify.db() as db:
            jobs = await db[JOBS].find({"client_id": agency.client_id}, {"_id": 1}).to_list()
            assert [job["_id"] for job in jobs] == [accepted["job_id"]]
            assert await db[IDEMPOTENCY].count_documents({"_id": {"$regex": f"^{agency.client_id}:"}}) == 1


async def _send_and_never_read(url: str, headers: dict[str, str], body: dict) -> asyncio.StreamWriter:
    """POST the batch over a connection of its own and return once it is sent; its answer is never read."""
    payload = json.dumps(body).encode()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [f"POST {BATCH} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}", *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    writer.write("\r\n".join(head).encode() + payload)
    await writer.drain()
    return writer


async def _retry(http: aiohttp.ClientSession, url: str, body: dict, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    """The retry a client makes: again while the answer is 503, after its Retry-After (a request that meets the
    killed process's transaction, still open in the database, waits for the database to drop it)."""
    while True:
        status, content, answer_headers = await _post(http, url, body, headers)
        if status != 503:
            return status, content, answer_headers
        await asyncio.sleep(float(answer_headers.get("Retry-After", "1")))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cut", ["reply", "commit"])
async def test_a_batch_retried_after_its_notify_process_was_killed_at_the_commit_exists_once(infra, auth_stand_in, cut):  # noqa: F811
    """SIGKILL lands at the commit of the request's transaction (tests/support/commit_cutter.py): once the database
    has committed it but before notify heard so and answered ("reply": the answer is lost), or with everything
    written and the commit not yet at the database ("commit": nothing is stored, and the dead process's open
    transaction holds the key until the database drops it). The agency retries with the same key on the restarted
    process: one job, the answer describes it, and each of its notifications exists once."""
    async with commit_cutter(infra.mongo_uri, JOBS, cut) as cutter, own_notify(infra, auth_stand_in) as notify:
        pid, _ = await asyncio.gather(notify.start_api(mongo_uri=cutter.uri), notify.start_dispatcher())
        agency = await notify.agency()
        body = _batch(await _template(notify, agency), KILL_TEST_RECIPIENTS)
        headers = {**notify.token(agency), "Idempotency-Key": str(uuid.uuid4())}
        mine = {"client_id": agency.client_id}

        async with notify.db() as db:
            cutter.arm()
            connection = await _send_and_never_read(notify.api_url(), headers, body)
            await asyncio.wait_for(cutter.held.wait(), timeout=60)
            await notify.kill_api(pid)
            connection.close()
            committed = [job["_id"] for job in await db[JOBS].find(mine, {"_id": 1}).to_list()]
            assert len(committed) == (1 if cut == "reply" else 0)

            await notify.start_api()
            async with aiohttp.ClientSession() as http:
                status, content, answer_headers = await _retry(http, notify.api_url(), body, headers)
                assert status == 201, content
                accepted = json.loads(content)
                assert accepted["total"] == KILL_TEST_RECIPIENTS and accepted["status"] == "accepted"
                if cut == "reply":
                    assert accepted["job_id"] == committed[0] and answer_headers["Idempotent-Replayed"] == "true"
                else:
                    assert "Idempotent-Replayed" not in answer_headers
                job_id = accepted["job_id"]

                # The dispatcher expands the one job: every recipient's notification once (the subs are unknown to
                # notify, so each is `failed`, unknown-recipient, at once).
                async def finished():
                    async with http.get(f"{notify.api_url()}{BATCH}/{job_id}", headers=notify.token(agency)) as response:
                        progress = await response.json()
                        return progress["finished"] and progress

                progress = await eventually(finished, timeout_s=120, interval_s=0.5)
            assert progress["total"] == progress["processed"] == progress["unknown_recipients"] == KILL_TEST_RECIPIENTS

            assert [job["_id"] for job in await db[JOBS].find(mine, {"_id": 1}).to_list()] == [job_id]
            assert await db[IDEMPOTENCY].count_documents({"_id": {"$regex": f"^{agency.client_id}:"}}) == 1
            assert await db[NOTIFICATIONS].count_documents(mine) == KILL_TEST_RECIPIENTS
            ids = await db[NOTIFICATIONS].distinct("_id", {"job_id": job_id})
            assert sorted(ids) == sorted(f"ntf-{job_id.removeprefix('job-')}-{i}" for i in range(KILL_TEST_RECIPIENTS))
