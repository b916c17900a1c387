"""Enrolment: a sandbox self-registration, and the refusals a kiosk or a citizen can meet."""

from __future__ import annotations

import base64

from ...support.people import identity, selfie


async def test_a_citizen_enrols_once_per_identity_card(auth_service):
    person = identity()
    body = {**person, "selfie": base64.b64encode(selfie()).decode()}
    first = await auth_service.client.post("/v1/enrolments", json=body)
    assert first.status == 201, await first.text()
    enrolled = await first.json()
    assert enrolled["state"] == "pending" and enrolled["assurance"] == "basic"
    assert first.headers["Cache-Control"] == "no-store"

    again = await auth_service.client.post("/v1/enrolments", json={**body, "selfie": base64.b64encode(selfie()).decode()})
    assert again.status == 409
    problem = await again.json()
    assert problem["type"].endswith("/duplicate-enrolment") and problem["title"] == "Duplicate enrolment"
    assert problem["detail"] == "this identity card is already enrolled"
    assert set(problem) == {"type", "title", "status", "detail", "instance"}  # no account id, state or date


async def test_an_unusable_selfie_is_refused_with_its_reason(auth_service):
    body = {**identity(), "selfie": base64.b64encode(b"not an image at all").decode()}
    refused = await auth_service.client.post("/v1/enrolments", json=body)
    assert refused.status == 422
    problem = await refused.json()
    assert problem["type"].endswith("/selfie-rejected") and problem["title"] == "Selfie rejected"
    assert problem["errors"] == [{"field": "selfie", "message": "selfie is not a readable image", "code": "not-an-image"}]


async def test_a_client_that_is_no_kiosk_may_not_enrol(auth_service):
    body = {**identity(), "selfie": base64.b64encode(selfie()).decode()}
    unknown = await auth_service.client.post("/v1/enrolments", json=body, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert unknown.status == 401
    assert unknown.headers["WWW-Authenticate"] == 'Basic realm="harbour-id"'
    assert (await unknown.json())["detail"] == "kiosk client credentials are required"
