"""An agency writes templates: versions, placeholder checks, trial renders, its own templates only."""

from __future__ import annotations

from tests.support.notify import TEMPLATE

from .conftest import problem


async def test_a_template_is_created_at_version_1_and_each_put_adds_a_version(notify):
    agency = await notify.agency()
    created = await notify.template(agency)
    assert (created["version"], created["name"], created["placeholders"]) == (1, "Licence renewal", ["name", "licence"])
    assert created["created_at"] == notify.clock.now().isoformat() and created["template_id"].startswith("tpl-")

    notify.clock.advance(60)
    renamed = {**TEMPLATE, "name": "Licence renewal (2)"}
    second = await notify.http.put(f"/v1/templates/{created['template_id']}", json=renamed, headers=notify.agency_token(agency))
    assert second.status == 201 and (await second.json())["version"] == 2

    headers = notify.agency_token(agency)
    latest = await (await notify.http.get(f"/v1/templates/{created['template_id']}", headers=headers)).json()
    first = await (await notify.http.get(f"/v1/templates/{created['template_id']}", params={"version": "1"}, headers=headers)).json()
    assert (latest["version"], latest["name"]) == (2, "Licence renewal (2)")
    assert first == created
    listed = await (await notify.http.get("/v1/templates", headers=headers)).json()
    assert [(t["template_id"], t["version"]) for t in listed["templates"]] == [(created["template_id"], 2)]


async def test_a_body_using_an_undeclared_placeholder_is_refused_with_its_names(notify):
    agency = await notify.agency()
    body = {**TEMPLATE, "placeholders": ["name"]}
    refused = await notify.http.post("/v1/templates", json=body, headers=notify.agency_token(agency))
    assert refused.status == 400
    answer = await problem(refused)
    assert (answer["type"].rsplit("/", 1)[1], answer["title"], answer["placeholders"]) == (
        "undeclared-placeholder", "Undeclared placeholder", ["licence"])


async def test_a_template_over_the_rendering_bounds_is_refused_at_creation(notify):
    agency = await notify.agency()
    nested = "{% for i in range(1000) %}{% for j in range(1000) %}.{% endfor %}{% endfor %}"
    body = {"name": "Costly", "placeholders": [], "content": {"en": {"subject": "Hi", "body": nested}}}
    refused = await notify.http.post("/v1/templates", json=body, headers=notify.agency_token(agency))
    assert refused.status == 422
    assert (await problem(refused))["type"].endswith("/template-too-costly")


async def test_versions_and_query_parameters_are_checked(notify):
    agency = await notify.agency()
    template_id = (await notify.template(agency))["template_id"]
    headers = notify.agency_token(agency)
    for params, slug in (({"version": "0"}, "bad-version"), ({"version": "x"}, "bad-version"), ({"versoin": "1"}, "bad-query")):
        refused = await notify.http.get(f"/v1/templates/{template_id}", params=params, headers=headers)
        assert refused.status == 400 and (await problem(refused))["type"].endswith(f"/{slug}"), params
    missing = await notify.http.get(f"/v1/templates/{template_id}", params={"version": "9"}, headers=headers)
    assert missing.status == 404 and (await problem(missing))["detail"] == "no such template version for this agency"


async def test_another_agencys_template_is_not_found(notify):
    agency, other = await notify.agency(), await notify.agency(name="Water Supplies Department")
    template_id = (await notify.template(agency))["template_id"]

    read = await notify.http.get(f"/v1/templates/{template_id}", headers=notify.agency_token(other))
    written = await notify.http.put(f"/v1/templates/{template_id}", json=TEMPLATE, headers=notify.agency_token(other))

    for answer in (read, written):
        assert answer.status == 404 and (await problem(answer))["detail"] == "no such template for this agency"
    assert (await (await notify.http.get("/v1/templates", headers=notify.agency_token(other))).json()) == {"templates": []}
