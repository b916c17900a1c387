"""The aiohttp application factory every service starts from, and the runner.

A service's `create_app(settings)` calls `create_service_app`, then adds its
resources (each an aiohttp `cleanup_ctx`, see libs/store and libs/events) and
its routes. `run` serves it with graceful shutdown on SIGTERM/SIGINT, and
`/metrics` on a second, internal listener (`metrics_host:metrics_port`): the
public listener has no `/metrics` (the gateway's answers 404).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable

import uvloop
from aiohttp import web

from .health import READINESS_CHECKS, add_health_routes, create_metrics_app
from .logging import configure_logging, get_logger
from .middleware import ACCESS_LOG, SERVICE_NAME, AccessLog, add_request_id_header, metrics_middleware, problem_middleware, request_id_middleware
from .overload import IN_FLIGHT, LONG_LIVED, LONG_POLLS, InFlight, in_flight_middleware
from .settings import ServiceSettings, SettingsError
from .tracing import configure_tracing, tracing_middleware

SETTINGS = web.AppKey("settings", ServiceSettings)


def create_service_app(settings: ServiceSettings) -> web.Application:
    middlewares = [request_id_middleware, tracing_middleware, metrics_middleware, problem_middleware]
    if settings.max_in_flight:
        # No limit (the gateway's default: it limits per upstream instead), nothing to admit: no middleware, no gauge.
        middlewares.append(in_flight_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SERVICE_NAME] = settings.service
    app[ACCESS_LOG] = AccessLog(slow_ms=settings.access_log_slow_ms, sample=settings.access_log_sample)
    if settings.max_in_flight:
        app[IN_FLIGHT] = InFlight(settings.service, settings.max_in_flight)
    app[LONG_LIVED] = set()
    app[LONG_POLLS] = set()
    app[READINESS_CHECKS] = {}
    app.on_response_prepare.append(add_request_id_header)
    add_health_routes(app)
    return app


def _metrics_listener(settings: ServiceSettings):
    """cleanup_ctx: the internal metrics listener, up before the service's resources and down after them."""

    async def listener(app: web.Application):
        runner = web.AppRunner(create_metrics_app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        get_logger("harbour.service").info("metrics listener", host=settings.metrics_host, port=settings.metrics_port)
        yield
        await runner.cleanup()

    return listener


# sysexits' EX_CONFIG: the process refused its configuration (an orchestrator shows it; restarting will not help).
EXIT_CONFIG = 78


def _process_name(factory: Callable[[], web.Application]) -> str:
    """services.auth.app -> auth; services.notify.dispatcher -> notify-dispatcher."""
    module = factory.__module__
    if module == "__main__" and getattr(sys.modules["__main__"], "__spec__", None) is not None:
        module = sys.modules["__main__"].__spec__.name  # python -m services.notify.dispatcher
    return "-".join(part for part in module.split(".")[1:] if part != "app") or module


def _build(factory: Callable[[], web.Application]) -> web.Application:
    """factory(), or — when it refuses its settings — one JSON log line naming them, and exit EXIT_CONFIG."""
    try:
        return factory()
    except SettingsError as exc:
        configure_logging(_process_name(factory))
        named = getattr(exc, "variables", None) or dict.fromkeys(re.findall(r"HARBOUR_[A-Z0-9_]+", str(exc)))
        get_logger("harbour.service").error("refusing to start", settings=list(named), reason=str(exc))
        raise SystemExit(EXIT_CONFIG) from None


def run(app: web.Application | Callable[[], web.Application]) -> None:
    """Serve `app` (or what the factory `app` builds: a process's `run(create_app)`, so a refused setting is logged)."""
    if not isinstance(app, web.Application):
        app = _build(app)
    settings = app[SETTINGS]
    configure_logging(settings.service, settings.log_level)
    log = get_logger("harbour.service")
    try:
        tracing = configure_tracing(settings.service)  # from the OTEL_* variables (libs/service/tracing.py)
    except SettingsError as exc:
        log.error("refusing to start", settings=list(exc.variables), reason=str(exc))
        raise SystemExit(EXIT_CONFIG) from None
    log.info("starting", host=settings.host, port=settings.port, tracing=tracing, loop="uvloop")
    app.cleanup_ctx.insert(0, _metrics_listener(settings))
    # uvloop: the same asyncio API on libuv, with less CPU per request and per connection.
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app,
        loop=loop,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    log.info("stopped")
