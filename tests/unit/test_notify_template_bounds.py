"""notify's bounded template rendering (pure logic): output, loop iterations, calls and allocating filters are bounded
while the template renders, at creation and at delivery."""

from __future__ import annotations

import time

import pytest

from services.notify.errors import TemplateRender, TemplateTooCostly, UndeclaredPlaceholder
from services.notify.sandbox import MAX_ITERATIONS, MAX_OUTPUT, BoundedSandbox, LimitExceeded, render_bounded
from services.notify.templates import RenderError, TemplateBody, check, render

NESTED = "{% for a in name %}{% for b in name %}{{ b }}{% endfor %}{% endfor %}"
# Looks harmless with the samples tried at creation, explodes with a 300-character value at delivery.
NESTED_AT_300 = "Dear {% if name|length == 300 %}" + NESTED + "{% endif %}"


def template(body: str, placeholders=("name",)) -> TemplateBody:
    return TemplateBody(name="t", placeholders=list(placeholders), content={"en": {"subject": "Hi", "body": body}})


def doc(body: str) -> dict:
    return {"content": {"en": {"subject": "Hi", "body": body}}, "placeholders": ["name"]}


def test_the_reported_nested_loop_template_is_refused_at_creation_with_422():
    with pytest.raises(TemplateTooCostly) as refused:
        check(template(NESTED))
    assert refused.value.status == 422 and refused.value.slug == "template-too-costly"
    assert "loop iterations" in str(refused.value)


def test_a_template_that_explodes_only_at_delivery_fails_there_quickly_and_bounded():
    check(template(NESTED_AT_300))  # passes its trial renders
    started = time.perf_counter()
    with pytest.raises(RenderError) as failed:
        render(doc(NESTED_AT_300), "en", {"name": "x" * 300})
    assert failed.value.reason == "render-limit-exceeded"
    assert time.perf_counter() - started < 1.0
    assert render(doc(NESTED_AT_300), "en", {"name": "Chan"})[1] == "Dear "


class Probe:
    """Counts how often the template asked it for a piece of output."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "y" * 100


def test_output_is_counted_as_it_streams_and_rendering_stops_at_the_limit():
    env = BoundedSandbox()
    probe = Probe()
    with pytest.raises(LimitExceeded, match="longer than"):
        render_bounded([env.from_string("{% for i in range(900) %}{{ probe() }}{% endfor %}")], {"probe": probe}, MAX_OUTPUT)
    assert probe.calls == MAX_OUTPUT // 100 + 1  # stopped at the first chunk over the limit, not after rendering all 900


@pytest.mark.parametrize("body, refusal", [
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", TemplateTooCostly),    # iterations without output
    ("{% for c in name %}{% for d in name %}.{% endfor %}{% endfor %}", TemplateTooCostly),                   # over the value, no output
    ("{{ range(1000000)|length }}", TemplateTooCostly),                                                       # range
    ("{{ name|center(1000000000) }}", TemplateTooCostly),
    ("{{ name|indent(100000000) }}", TemplateTooCostly),
    ("{{ name|wordwrap(5, wrapstring='x' * 5000) }}", TemplateTooCostly),
    ("{{ '%1000000000s'|format(name) }}", TemplateTooCostly),
    ("{{ '%*s'|format(1000000000, name) }}", TemplateTooCostly),
    ("{{ '%1000000000s' % name }}", TemplateTooCostly),
    ("{{ '{:>1000000000}'.format(name) }}", TemplateTooCostly),
    ("{{ '{:>{w}}'.format(name, w=1000000000) }}", TemplateTooCostly),
    ("{{ name.ljust(1000000000) }}", TemplateRender),
    ("{{ name.zfill(1000000000) }}", TemplateRender),
    ("{{ (1).to_bytes(1000000000, 'big') }}", TemplateRender),
    ("{{ name * 100000 }}", TemplateTooCostly),
    ("{{ [name] * 100000 }}", TemplateTooCostly),
    ("{{ 99999999999999999999999999999999999999 * 99999999999999999999999999999999999999999999999999999999999 * 999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999 }}", TemplateTooCostly),
    ("{{ name|replace('x', 'y' * 1000) }}", TemplateTooCostly),
    ("{{ name|replace('', 'y' * 100) }}", TemplateTooCostly),
    ("{{ range(1000)|map('center', 200)|join }}", TemplateTooCostly),
    ("{{ [1]|batch(1000000000, 'x')|list }}", TemplateTooCostly),
    ("{{ [1]|slice(1000000000, 'x')|list }}", TemplateTooCostly),
    ("{% set ns = namespace(s=name) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", TemplateTooCostly),
    ("{% set ns = namespace(s=name) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}", TemplateTooCostly),
    ("{% set l = [name] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}", TemplateRender),
    ("{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(30)|length }}", TemplateTooCostly),
    ("{% macro m() %}{% set x %}{{ name }}{{ name }}{{ name }}{% endset %}{% endmacro %}{% for i in range(999) %}{{ m() }}{% endfor %}", TemplateTooCostly),
    ("{% for x in [1, 2] recursive %}{{ loop([x]) }}{% endfor %}", TemplateTooCostly),
    ("{{ lipsum(1000000) }}", UndeclaredPlaceholder),
])
def test_work_and_allocation_are_refused_at_creation(body, refusal):
    started = time.perf_counter()
    with pytest.raises(refusal):
        check(template(body))
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("body, expected", [
    ("{% for c in ['a', 'b'] %}{{ loop.index }}{{ c }} {% endfor %}", "1a 2b "),
    ("{{ name|center(11) }}|", "    Chan   |"),
    ("{{ '%5s|%-6s|' % (name, name) }}", " Chan|Chan  |"),
    ("{{ '{:>6}'.format(name) }}", "  Chan"),
    ("{{ ['a', name]|join(', ') }} {{ name|upper }} {{ name|replace('a', 'e') }} {{ name.lower() }}", "a, Chan CHAN Chen chan"),
    ("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", "3"),
    ("{{ name|indent(2, true) }}", "  Chan"),
])
def test_ordinary_templates_still_render(body, expected):
    check(template(body))
    assert render(doc(body), "en", {"name": "Chan"})[1] == expected


def test_bounds_are_per_render_and_do_not_leak_between_renders():
    body = "{% for i in range(600) %}.{% endfor %}"
    check(template(body))
    for _ in range(3):  # 3 × 600 iterations in total, each render under MAX_ITERATIONS
        assert len(render(doc(body), "en", {"name": "x"})[1]) == 600
    assert 600 < MAX_ITERATIONS < 1200


@pytest.mark.parametrize("body", ['Pay {{ "\\u202e" }}now', "{{ '\\u200b' }}", 'Hi {{ name ~ "\\x07" }}'])
def test_a_bidi_or_control_character_made_by_an_expression_is_refused_at_creation(body):
    """The template source holds only an escape, which passes the source check; the rendered text does not."""
    assert "\u202e" not in body and "\u200b" not in body
    with pytest.raises(TemplateRender) as refused:
        check(template(body))
    assert refused.value.status == 400 and refused.value.slug == "template-render"
    assert "control or format characters" in str(refused.value)
    with pytest.raises(RenderError) as failed:
        render(doc(body), "en", {"name": "Chan"})
    assert failed.value.reason == "render-error"
