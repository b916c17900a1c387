"""The aiohttp service kit: app factory, health/readiness/metrics, request ids, problem+json, JSON logs."""

from .app import SETTINGS, create_service_app, run
from .health import add_readiness_check
from .logging import configure_logging, get_logger
from .problems import (
    Conflict,
    Forbidden,
    MalformedBody,
    NotFound,
    Problem,
    Refused,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from .settings import ServiceSettings
from .validation import parse_body, read_json, validate

__all__ = [
    "SETTINGS",
    "Conflict",
    "Forbidden",
    "MalformedBody",
    "NotFound",
    "Problem",
    "Refused",
    "ServiceSettings",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "add_readiness_check",
    "configure_logging",
    "create_service_app",
    "get_logger",
    "parse_body",
    "read_json",
    "run",
    "validate",
]
