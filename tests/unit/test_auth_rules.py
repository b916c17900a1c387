"""auth's pure rules: enrolment validation, the age limit, activation codes, account transitions."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.auth.clients.metadata import (
    FIXED_FIELDS,
    OPERATOR_ONLY_FIELDS,
    SELF_SERVICE_FIELDS,
    ClientMetadata,
    ClientUpdate,
    operator_only_changes,
)
from services.auth.clients.registry import client_from_doc
from services.auth.identity.accounts import TRANSITIONS
from services.auth.errors import ActivationRefused
from services.auth.identity.activation import code_matches, new_activation, refuse_unusable
from services.auth.identity.enrolment import EnrolmentRequest, age_on

KEY = b"k" * 32
VALID = {
    "id_number": "a123456 3",
    "name_en": "CHAN Tai Man",
    "name_zh": "陳大文",
    "date_of_birth": "1985-03-14",
    "gender": "M",
    "phone": "+85291234567",
    "email": "chan@example.hk",
    "address": "8 Harbour Road, Wan Chai",
    "selfie": base64.b64encode(b"\x89PNG....").decode(),
}


def fields_of(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_a_valid_request_is_normalised():
    request = EnrolmentRequest.model_validate(VALID)
    assert request.id_number == "A123456(3)"
    assert "selfie" not in repr(request)
    assert "selfie" not in request.profile()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id_number", "A123456(4)"),
        ("name_en", "陳大文"),
        ("name_zh", "Chan"),
        ("gender", "male"),
        ("phone", "91234567"),
        ("email", "chan@"),
        ("selfie", "***not base64***"),
        ("date_of_birth", "2999-01-01"),
    ],
)
def test_each_bad_field_is_named(field, value):
    with pytest.raises(ValidationError) as exc:
        EnrolmentRequest.model_validate({**VALID, field: value})
    assert fields_of(exc.value) == {field}


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        EnrolmentRequest.model_validate({**VALID, "is_admin": True})


def test_age_limit_is_eleven_on_the_day():
    assert age_on(date(2015, 6, 1), date(2026, 6, 1)) == 11
    assert age_on(date(2015, 6, 2), date(2026, 6, 1)) == 10
    assert age_on(date(2016, 2, 29), date(2027, 2, 28)) == 10
    today = datetime.now(UTC).date()
    ten = today.replace(year=today.year - 10) if not (today.month == 2 and today.day == 29) else today - timedelta(days=3650)
    with pytest.raises(ValidationError):
        EnrolmentRequest.model_validate({**VALID, "date_of_birth": ten.isoformat()})


def test_activation_code_checks():
    now = datetime.now(UTC)
    activation = new_activation(KEY, ttl_s=60, now=now)
    stored = activation.stored()
    assert activation.code not in str(stored)
    refuse_unusable(stored, now=now, max_attempts=5)
    assert code_matches(stored, activation.display().lower(), KEY)
    assert not code_matches(stored, "2222233333", KEY)
    with pytest.raises(ActivationRefused) as expired:
        refuse_unusable(stored, now=now + timedelta(seconds=61), max_attempts=5)
    assert expired.value.reason == "expired"
    with pytest.raises(ActivationRefused) as locked:
        refuse_unusable({**stored, "attempts": 5}, now=now, max_attempts=5)
    assert locked.value.reason == "locked"
    with pytest.raises(ActivationRefused) as used:
        refuse_unusable({**stored, "status": "used"}, now=now, max_attempts=5)
    assert used.value.reason == "used"


def test_account_transitions():
    assert TRANSITIONS["pending"] == {"active", "revoked", "closed"}
    assert TRANSITIONS["revoked"] == {"closed"}  # revoked is final but for closing (its data shredded)
    assert TRANSITIONS["closed"] == set()  # closed for good: a new enrolment is a new account
    assert all("closed" in targets for state, targets in TRANSITIONS.items() if state != "closed")
    assert "pending" not in set().union(*TRANSITIONS.values())


def test_every_client_metadata_member_is_either_the_clients_the_operators_or_fixed():
    groups = [set(SELF_SERVICE_FIELDS), set(OPERATOR_ONLY_FIELDS), set(FIXED_FIELDS)]
    assert set().union(*groups) == set(ClientMetadata.model_fields)
    assert sum(len(g) for g in groups) == len(ClientMetadata.model_fields)  # no member in two groups


def test_operator_only_changes_are_named_and_self_service_ones_are_not():
    current = ClientMetadata(client_name="Portal", redirect_uris=["https://portal.example/cb"], scope="openid formfill")
    same = ClientUpdate(client_name="Portal", redirect_uris=["https://portal.example/cb"], scope="formfill openid",
                        contacts=["ops@portal.example"], logo_uri="https://portal.example/logo.png")
    assert operator_only_changes(current, same.metadata()) == []
    grab = ClientUpdate(client_name="Hong Kong Government (Immigration)", redirect_uris=["https://evil.example/cb"],
                        scope="openid sign notify", formfill_fields=["id_number"])
    assert operator_only_changes(current, grab.metadata()) == ["client_name", "scope", "formfill_fields", "redirect_uris"]


def test_agency_events_is_a_strict_boolean_off_unless_asked_for_and_the_operators_to_change():
    agency = {"client_name": "Housing", "kind": "agency", "scope": "notify"}
    assert ClientMetadata(**agency).agency_events is False
    assert ClientMetadata(**agency, agency_events=True).agency_events is True
    for wrong in ("yes", "true", 1, None):
        with pytest.raises(ValidationError):
            ClientMetadata(**agency, agency_events=wrong)
    assert operator_only_changes(ClientMetadata(**agency), ClientMetadata(**agency, agency_events=True)) == ["agency_events"]
    # A registration stored before the member existed: every client then had its agency topic, and keeps it.
    assert client_from_doc({"_id": "agency-1", "metadata": agency}).metadata.agency_events is True
    assert client_from_doc({"_id": "agency-2", "metadata": {**agency, "agency_events": False}}).metadata.agency_events is False
    assert client_from_doc({"_id": "agency-2", "metadata": {**agency, "agency_events": False}}).event_data()["agency_events"] is False


def test_client_names_refuse_bidi_and_format_characters():
    with pytest.raises(ValidationError):
        ClientMetadata(client_name="Portal \u202egnp.exe", kind="agency", scope="notify")
