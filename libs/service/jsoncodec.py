"""One fast JSON encoder (orjson) for what the services write themselves: JSON answers and log lines.

A drop-in for `json.dumps` where only the meaning of the text matters (no
spaces after separators; otherwise the same JSON): aiohttp's
`json_response(dumps=dumps)` and structlog's `JSONRenderer(serializer=...)`.
What orjson refuses (an integer wider than 64 bits, say) falls back to the
standard library, so the output never fails where `json.dumps` would not.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any, **_ignored: Any) -> str:
    """`json.dumps(obj)` as orjson writes it."""
    try:
        return orjson.dumps(obj, option=_OPTIONS).decode()
    except TypeError:
        return json.dumps(obj)


def _repr_fallback(obj: Any) -> Any:
    """What structlog's own renderer does with what JSON cannot say: its `__structlog__()`, else its repr."""
    structlog_view = getattr(obj, "__structlog__", None)
    return structlog_view() if callable(structlog_view) else repr(obj)


def dumps_log(obj: Any, **_ignored: Any) -> str:
    """A log line: anything JSON cannot say is written as its repr, never an error."""
    try:
        return orjson.dumps(obj, default=_repr_fallback, option=_OPTIONS).decode()
    except TypeError:
        return json.dumps(obj, default=_repr_fallback)
