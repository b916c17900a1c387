"""Pure rule of silent sign-on: what a session's approvals allow (the stack tests are in tests/e2e/test_oidc_consent.py)."""

from __future__ import annotations

import pytest

from services.auth.oidc.sessions import approved

SESSION = {"approved": [{"client_id": "portal-a", "scopes": ["openid", "sign"]}]}


@pytest.mark.parametrize(
    ("client_id", "scopes", "expected"),
    [
        ("portal-a", ["openid", "sign"], True),
        ("portal-a", ["openid"], True),
        ("portal-a", ["openid", "sign", "notify"], False),
        ("portal-a", ["openid", "offline_access"], False),
        ("portal-b", ["openid"], False),
    ],
    ids=["same", "subset", "extra-scope", "offline-access", "other-client"],
)
def test_prompt_none_repeats_only_an_approval_of_this_client_and_scope(client_id, scopes, expected):
    assert approved(SESSION, client_id, scopes) is expected


def test_a_session_without_approvals_approves_nothing():
    assert approved({}, "portal-a", ["openid"]) is False
