"""notify's pure rules: template checks and the sandbox, placeholders at send, quiet hours in Hong Kong time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from libs.errors import Refused
from services.notify import errors
from services.notify.errors import TemplateRender, TemplateSyntax, TemplateTooCostly, UndeclaredPlaceholder
from services.notify.preferences import PreferencesBody, quiet_until
from services.notify.templates import RenderError, TemplateBody, check, missing_placeholders, render


def template(body: str, placeholders=("name",), **more) -> TemplateBody:
    return TemplateBody(name="t", placeholders=list(placeholders), content={"en": {"subject": "Hi {{ name }}", "body": body}, **more})


def test_a_body_using_an_undeclared_variable_is_refused_with_its_name():
    with pytest.raises(UndeclaredPlaceholder) as refused:
        check(template("Your {{ licence }} expires"))
    assert refused.value.status == 400 and refused.value.extensions["placeholders"] == ["licence"]


@pytest.mark.parametrize("body, refusal", [
    ("{{ name.__class__.__mro__ }}", TemplateRender),                # the sandbox: no attribute tricks
    ("{{ 9 ** 9 ** 9 }}", TemplateRender),                           # no power operator (CPU)
    ("{{ 'x' * 100000 }}", TemplateTooCostly),                       # no huge repetitions (memory)
    ("{% for x in name %}{{ y }}{% endfor %}", UndeclaredPlaceholder),  # undeclared inside a loop
    ("{{ name ", TemplateSyntax),                                     # syntax error
])
def test_dangerous_or_broken_templates_are_refused_at_creation(body, refusal):
    with pytest.raises(refusal):
        check(template(body))


def test_rendering_picks_the_citizens_language_and_falls_back_to_english():
    body = template("Dear {{ name }}", **{"zh-HK": {"subject": "你好 {{ name }}", "body": "{{ name }} 你好"}})
    check(body)
    doc = body.model_dump()
    assert render(doc, "zh-HK", {"name": "陳"}) == ("你好 陳", "陳 你好", "zh-HK")
    assert render(doc, "zh-CN", {"name": "Chan"}) == ("Hi Chan", "Dear Chan", "en")
    with pytest.raises(RenderError):
        render(doc, "en", {})  # StrictUndefined: a missing value never renders as empty


def test_missing_placeholders_are_listed():
    doc = template("{{ name }} {{ licence }}", placeholders=("name", "licence")).model_dump()
    assert missing_placeholders(doc, {"name": "x"}) == ["licence"]
    assert missing_placeholders(doc, {"name": "x", "licence": "y", "extra": "z"}) == []


def test_english_content_is_required():
    with pytest.raises(ValidationError):
        TemplateBody(name="t", placeholders=[], content={"zh-HK": {"subject": "s", "body": "b"}})


@pytest.mark.parametrize("now, expected", [
    (datetime(2026, 11, 28, 15, 30, tzinfo=UTC), datetime(2026, 11, 28, 23, 0, tzinfo=UTC)),  # 23:30 HKT → 07:00 HKT
    (datetime(2026, 11, 28, 21, 0, tzinfo=UTC), datetime(2026, 11, 28, 23, 0, tzinfo=UTC)),   # 05:00 HKT → 07:00 HKT
    (datetime(2026, 11, 28, 4, 0, tzinfo=UTC), None),                                         # 12:00 HKT: not quiet
])
def test_quiet_hours_over_midnight_in_hong_kong_time(now, expected):
    assert quiet_until({"start": "22:00", "end": "07:00"}, now) == expected


def test_preferences_keep_the_inbox_and_valid_clocks():
    with pytest.raises(ValidationError):
        PreferencesBody(channels=["push"])
    with pytest.raises(ValidationError):
        PreferencesBody(quiet_hours={"start": "25:00", "end": "07:00"})
    assert PreferencesBody(channels=["push", "inbox"]).channels == ["inbox", "push"]


def test_the_dispatcher_is_idle_only_when_nothing_is_in_flight_since_the_last_event_finished():
    from services.notify.dispatcher import ConsumerActivity

    now = [100.0]
    activity = ConsumerActivity(clock=lambda: now[0])
    now[0] = 103.0
    assert activity.idle_for() == 3.0
    with activity.handling():
        now[0] = 120.0  # a long expansion: never idle while it runs, however long it takes
        assert activity.idle_for() == 0.0
    assert activity.idle_for() == 0.0  # counted from when it finished
    now[0] = 126.0
    assert activity.idle_for() == 6.0
    try:
        with activity.handling():
            raise RuntimeError("a failed attempt")
    except RuntimeError:
        pass
    assert activity.idle_for() == 0.0  # a failure also finishes the event


def test_every_notify_refusal_is_declared_once_with_the_title_its_slug_always_had():
    declared = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, Refused) for cls in declared)
    assert len({cls.slug for cls in declared}) == len(declared)
    for cls in declared:  # the former renderer derived the title from the slug: the answers stay identical
        assert cls.title == cls.slug.replace("-", " ").capitalize(), cls
    busy, unknown = errors.TooManyStreams("close one"), errors.UnknownClient("retry shortly")
    assert (busy.status, busy.headers) == (429, {"Retry-After": "5"})
    assert (unknown.status, unknown.headers) == (409, {"Retry-After": "1"})
