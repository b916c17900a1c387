"""JSON logs through structlog, with the request id bound per request and PII redacted.

Every line is one JSON object on stdout. A line logged inside a span (a
request, the handling of an event) carries its `trace_id` and `span_id`, so
logs join traces (libs/service/tracing.py). `redact_pii` runs before rendering,
so a field whose name says it carries personal data or a secret never reaches
the log, whatever the caller passed.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from opentelemetry import trace

from .jsoncodec import dumps_log

REDACTED = "[redacted]"

# Field names that carry personal data or secrets, which are never logged. Matched
# case-insensitively against every key of the event dict, nested ones too.
SENSITIVE_KEYS = frozenset(
    {
        "name", "name_en", "name_zh", "english_name", "chinese_name", "full_name",
        "id_number", "hkid", "identity_card", "card_number",
        "date_of_birth", "dob", "birth_date", "gender",
        "phone", "phone_number", "mobile", "email", "address", "residential_address",
        "selfie", "photo", "image",
        "password", "secret", "client_secret", "pin", "token", "access_token",
        "refresh_token", "id_token", "authorization", "cookie", "activation_code",
        "private_key", "kek", "data_key",
    }
)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def add_trace_ids(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The current span's trace and span ids (W3C hex), on lines logged inside one."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = f"{span_context.trace_id:032x}"
        event_dict["span_id"] = f"{span_context.span_id:016x}"
    return event_dict


def redact_pii(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return _redact(event_dict)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is when a line is logged, not when the handler was made."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library (aiohttp, aiokafka, pymongo) into one JSON stream."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_pii,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=dumps_log),
        ],
    )
    handler = _StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The access log duplicates our own request log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
