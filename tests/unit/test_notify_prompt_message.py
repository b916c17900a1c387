"""notify's "approve on your phone" message: built from the prompt's clear part only (pure logic)."""

from __future__ import annotations

import pytest

from services.notify.platform_messages import message
from services.notify.templates import LANGUAGES, render

ACTIONS = {"login": "log in", "formfill": "share your details", "sign": "sign a document", "test": "approve a request"}


def test_the_approval_message_needs_no_free_text():
    assert set(message("approval")["placeholders"]) == {"client_name", "action", "matching_code"}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_language_names_the_requester_and_the_kind_of_action(language: str, action: str):
    subject, body, used = render(message("approval"), language, {"client_name": "Harbour Water", "action": action, "matching_code": ""})
    assert used == language and "Harbour Water" in subject and body.startswith("Harbour Water")
    if language == "en":
        assert ACTIONS[action] in body
