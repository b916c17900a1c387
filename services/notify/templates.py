"""Templates: an agency's messages in en, zh-HK and zh-CN, versioned, rendered with sandboxed Jinja2.

A template declares its placeholders; a body that uses any other variable is
refused at creation, and a send that lacks a declared one is refused (400) —
so rendering in the dispatcher cannot meet an unknown name. Each PUT writes a
new version; versions are immutable and a notification pins the one it was
sent with.

Rendering is bounded while it runs (sandbox.py: output streamed and counted,
loop iterations, calls, allocating filters). At creation each language is
trial-rendered twice — with short sample values and with every value at its
longest allowed size — and a template that goes over a bound is refused
(422 `template-too-costly`); at delivery a message that goes over is that
notification `failed` (`reason: render-limit-exceeded`), nothing else.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs.service.validation import DisplayParagraph, DisplayText, check_display_text

from .errors import NotFound, TemplateRender, TemplateSyntax, TemplateTooCostly, UndeclaredPlaceholder, VersionConflict
from .collections import TEMPLATES

if TYPE_CHECKING:
    import jinja2

    from .sandbox import BoundedSandbox

Language = Literal["en", "zh-HK", "zh-CN"]
LANGUAGES: tuple[str, ...] = ("en", "zh-HK", "zh-CN")
PLACEHOLDER = r"^[a-z][a-z0-9_]{0,39}$"

# The longest personalisation value a send may carry (notifications.check_values): the worst case tried at creation.
MAX_VALUE_CHARS = 1000


@cache
def _env() -> BoundedSandbox:
    """The bounded Jinja sandbox, made (and Jinja loaded) by the first template checked or rendered, not at start:
    notify at rest needs neither (docs/operations.md, idle RSS)."""
    from .sandbox import BoundedSandbox

    return BoundedSandbox()


class Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Shown in the citizen's inbox: no control or format characters (the body may hold line breaks).
    subject: DisplayText = Field(min_length=1, max_length=200)
    body: DisplayParagraph = Field(min_length=1, max_length=5000)


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    placeholders: list[str] = Field(default_factory=list, max_length=50, description="every variable the bodies may use")
    content: dict[Language, Content] = Field(description="en is required; zh-HK and zh-CN fall back to en when absent")

    @field_validator("placeholders")
    @classmethod
    def _placeholders(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(PLACEHOLDER, value):
                raise ValueError("a placeholder is lower-case letters, digits and _, starting with a letter (max 40)")
        if len(set(values)) != len(values):
            raise ValueError("each placeholder at most once")
        return values

    @model_validator(mode="after")
    def _english(self) -> "TemplateBody":
        if "en" not in self.content:
            raise ValueError("content.en is required (the fallback language)")
        return self


def variables(source: str) -> set[str]:
    """The variables a template source uses; a syntax error is the caller's 400."""
    import jinja2
    from jinja2 import meta

    try:
        return meta.find_undeclared_variables(_env().parse(source))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateSyntax(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    except RecursionError:
        raise TemplateSyntax("the template nests too deeply") from None


def check(body: TemplateBody) -> None:
    declared = set(body.placeholders)
    undeclared: set[str] = set()
    for content in body.content.values():
        undeclared |= (variables(content.subject) | variables(content.body)) - declared
    if undeclared:
        raise UndeclaredPlaceholder(f"the template uses undeclared placeholders: {', '.join(sorted(undeclared))}",
                                    placeholders=sorted(undeclared))
    # Trial renders: a template that cannot render, or goes over a bound with short or longest-allowed values, is refused now.
    doc = {"content": {lang: c.model_dump() for lang, c in body.content.items()}}
    for sample in ({name: "sample" for name in body.placeholders}, {name: "x" * MAX_VALUE_CHARS for name in body.placeholders}):
        for language in body.content:
            try:
                render(doc, language, sample)
            except RenderError as exc:
                if exc.reason == "render-limit-exceeded":
                    raise TemplateTooCostly(f"the {language} template goes over the rendering limits: {exc}") from None
                raise TemplateRender(f"the {language} template cannot be rendered: {exc}") from None


def missing_placeholders(template: dict[str, Any], personalisation: dict[str, str]) -> list[str]:
    return sorted(set(template["placeholders"]) - set(personalisation))


@lru_cache(maxsize=2048)
def _compiled(source: str) -> jinja2.Template:
    return _env().from_string(source)


class RenderError(Exception):
    """A template that cannot be rendered with these values: `reason` is render-error (the sandbox refused, a filter
    failed) or render-limit-exceeded (output size, loop iterations, calls or an allocating filter over its bound)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def render(template: dict[str, Any], language: str, values: dict[str, str]) -> tuple[str, str, str]:
    """(subject, body, language used): the citizen's language if the template has it, else English. Bounded (sandbox.py)."""
    import jinja2

    from .sandbox import MAX_OUTPUT, LimitExceeded, render_bounded

    chosen = language if language in template["content"] else "en"
    content = template["content"][chosen]
    try:
        subject, body = render_bounded([_compiled(content["subject"]), _compiled(content["body"])], values, MAX_OUTPUT)
    except LimitExceeded as exc:
        raise RenderError("render-limit-exceeded", str(exc)) from None
    except MemoryError:
        raise RenderError("render-limit-exceeded", "out of memory") from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError, RecursionError) as exc:
        raise RenderError("render-error", type(exc).__name__) from None
    # The source passed the display-text check, but an escape inside an expression (`{{ "\u202e" }}`) can still
    # produce a bidi override: what reaches the citizen is checked too.
    try:
        check_display_text(subject)
        check_display_text(body, multiline=True)
    except ValueError as exc:
        raise RenderError("render-error", f"the rendered message {exc}") from None
    return subject, body, chosen


class Template(BaseModel):
    template_id: str
    version: int
    name: str
    placeholders: list[str]
    content: dict[str, Content]
    created_at: str


class TemplateList(BaseModel):
    templates: list[Template]


def _view(doc: dict[str, Any]) -> Template:
    return Template(template_id=doc["template_id"], version=doc["version"], name=doc["name"], placeholders=doc["placeholders"],
                    content=doc["content"], created_at=doc["created_at"].isoformat())


async def create(db: AsyncDatabase, client_id: str, body: TemplateBody, now: datetime) -> Template:
    check(body)
    doc = {"_id": None, "template_id": f"tpl-{secrets.token_urlsafe(9)}", "version": 1, "client_id": client_id,
           **body.model_dump(), "created_at": now}
    doc["_id"] = f"{doc['template_id']}:1"
    await db[TEMPLATES].insert_one(doc)
    return _view(doc)


async def new_version(db: AsyncDatabase, client_id: str, template_id: str, body: TemplateBody, now: datetime) -> Template:
    check(body)
    latest = await _latest(db, client_id, template_id)
    version = latest["version"] + 1
    doc = {"_id": f"{template_id}:{version}", "template_id": template_id, "version": version, "client_id": client_id,
           **body.model_dump(), "created_at": now}
    try:
        await db[TEMPLATES].insert_one(doc)
    except DuplicateKeyError:  # a concurrent PUT took this version number
        raise VersionConflict("another version was written at the same time; retry") from None
    return _view(doc)


async def _latest(db: AsyncDatabase, client_id: str, template_id: str) -> dict[str, Any]:
    doc = await db[TEMPLATES].find_one({"template_id": template_id, "client_id": client_id}, sort=[("version", -1)])
    if doc is None:
        raise NotFound("no such template for this agency")
    return doc


async def get(db: AsyncDatabase, client_id: str, template_id: str, version: int | None = None) -> dict[str, Any]:
    """The template (its latest version unless one is named), this agency's only."""
    if version is None:
        return await _latest(db, client_id, template_id)
    doc = await db[TEMPLATES].find_one({"_id": f"{template_id}:{version}", "client_id": client_id})
    if doc is None:
        raise NotFound("no such template version for this agency")
    return doc


async def show(db: AsyncDatabase, client_id: str, template_id: str, version: int | None) -> Template:
    return _view(await get(db, client_id, template_id, version))


async def list_latest(db: AsyncDatabase, client_id: str) -> TemplateList:
    docs = await db[TEMPLATES].find({"client_id": client_id}).sort("created_at", -1).limit(1000).to_list()
    latest: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["template_id"] not in latest or doc["version"] > latest[doc["template_id"]]["version"]:
            latest[doc["template_id"]] = doc
    return TemplateList(templates=[_view(d) for d in latest.values()])
