"""Request parsing: JSON bodies into pydantic models, failures into 4xx problems.

Every handler that takes a body goes through `parse_body`, so no handler can
answer a malformed or invalid body with a 500.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

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


def validate(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            f"{exc.error_count()} field(s) failed validation", errors=validation_errors(exc)
        ) from None


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    return validate(model, await read_json(request))
