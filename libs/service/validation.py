"""Request parsing: JSON bodies into pydantic models, failures into 4xx problems.

Every handler that takes a body goes through `parse_body`, so no handler can
answer a malformed or invalid body with a 500.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ValidationError

from .problems import MalformedBody, UnsupportedMediaType, ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """The offending fields, as JSON-pointer-ish paths, without echoing input values (they may be PII)."""
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        location = "/".join(str(part) for part in error["loc"])
        errors.append({"field": location or "(body)", "message": error["msg"], "code": error["type"]})
    return errors


async def read_json(request: web.Request) -> Any:
    if request.content_type not in {"application/json", "application/merge-patch+json"} and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(f"expected application/json, got {request.content_type or 'nothing'}")
    raw = await request.read()
    if not raw:
        raise MalformedBody("the request body is empty; a JSON document is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedBody(f"the request body is not valid JSON{position}") from None
    except RecursionError:  # json's decoder recurses per level: "[[[[…" deep enough is a 400, not a 500
        raise MalformedBody("the request body is nested too deeply") from None


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            f"{exc.error_count()} field(s) failed validation", errors=validation_errors(exc)
        ) from None


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    return validate(model, await read_json(request))


# Text a relying party supplies and a citizen reads (client names, document names, purposes, binding
# messages, notification templates): no control characters (Cc), no format characters (Cf: bidi
# overrides and isolates, zero-width characters, the BOM...), no surrogates or private-use characters,
# no line or paragraph separators. A bidi override makes "invoice-\u202efdp.exe" show as
# "invoice-exe.pdf"; invisible characters make two names that look the same differ.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def check_display_text(value: str, *, multiline: bool = False) -> str:
    """`value` unchanged, or ValueError naming the first refused character (multiline text may hold \n)."""
    for position, char in enumerate(value):
        if multiline and char == "\n":
            continue
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            raise ValueError(f"must not contain control or format characters (U+{ord(char):04X}, category {category}, "
                             f"at position {position})")
    return value


# A single line shown to the citizen; constrain its length where it is used: `DisplayText = Field(max_length=...)`.
DisplayText = Annotated[str, AfterValidator(check_display_text)]
# The same, for text that may run over several lines (a message body).
DisplayParagraph = Annotated[str, AfterValidator(lambda value: check_display_text(value, multiline=True))]
