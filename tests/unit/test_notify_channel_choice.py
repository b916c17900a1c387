"""Which channel carries a notification (preferences.choose_channel) and what the preferences and sends accept:
pure rules, no I/O (the end-to-end journeys are tests/e2e/test_notify_channels.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.notify.messaging import ChannelRefused, ChannelUnavailable, _by_code, _without_addresses
from services.notify.notifications import NotificationBody
from services.notify.preferences import PreferencesBody, choose_channel

EVERYTHING = {"channels": ["inbox", "push", "email", "sms"], "contact_kinds": ["email", "phone"]}


@pytest.mark.parametrize("order, pref, chosen", [
    (None, {}, "push"),                                                 # no preferences: inbox and push, as before
    (None, {"channels": ["inbox"]}, "inbox"),                           # push off, nothing else: the inbox alone
    (None, EVERYTHING, "push"),                                         # no order: push, e-mail, SMS
    (["sms", "email"], EVERYTHING, "sms"),                              # the agency's first that the citizen has on
    (["email", "sms"], EVERYTHING, "email"),
    (["sms", "push"], {"channels": ["inbox", "email"], "contact_kinds": ["email"]}, "inbox"),  # none of the order is on
    (["email"], {"channels": ["inbox", "email"]}, "inbox"),             # on, but no address held: not chosen
    (["sms", "email"], {"channels": ["inbox", "email", "sms"], "contact_kinds": ["email"]}, "email"),
])
def test_the_first_channel_of_the_order_that_the_citizen_turned_on_carries_it(order, pref, chosen):
    assert choose_channel(order, pref) == chosen


def test_platform_messages_go_by_push_only_whatever_the_citizen_turned_on():
    assert choose_channel(None, EVERYTHING, platform=True) == "push"
    assert choose_channel(None, {"channels": ["inbox", "email"], "contact_kinds": ["email"]}, platform=True) == "inbox"


def test_email_and_sms_need_their_address_and_unknown_channels_are_refused():
    assert PreferencesBody(channels=["inbox", "email"], email="chan@example.hk").channels == ["email", "inbox"]
    for body in ({"channels": ["inbox", "email"]}, {"channels": ["inbox", "sms"], "phone": "12345"},
                 {"channels": ["inbox", "fax"]}, {"channels": ["push"]}):
        with pytest.raises(ValidationError):
            PreferencesBody(**body)
    send = {"template_id": "t", "sub": "s"}
    assert NotificationBody(**send, channels=["sms", "push"]).channels == ["sms", "push"]
    for channels in (["fax"], ["sms", "sms"], [], ["inbox"], ["push", "email", "sms", "push"]):
        with pytest.raises(ValidationError):
            NotificationBody(**send, channels=channels)


def test_smtp_answers_are_permanent_at_5xx_temporary_otherwise_and_lose_the_addresses_they_echo():
    refused = _by_code(550, "5.1.1 <chan@example.hk>: Recipient address rejected")
    assert isinstance(refused, ChannelRefused) and "chan@example.hk" not in str(refused) and str(refused).startswith("smtp 550")
    assert isinstance(_by_code(451, "4.3.0 try later"), ChannelUnavailable)
    assert _without_addresses("queued for lee@example.hk as 1A2B") == "queued for <address> as 1A2B"
