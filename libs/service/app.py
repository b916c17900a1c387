"""The aiohttp application factory every service starts from, and the runner.

A service's `create_app(settings)` calls `create_service_app`, then adds its
resources (each an aiohttp `cleanup_ctx`, see libs/store and libs/events) and
its routes. `run` serves it with graceful shutdown on SIGTERM/SIGINT, and
`/metrics` on a second, internal listener (`metrics_host:metrics_port`): the
public listener has no `/metrics` (the gateway's answers 404).
"""

from __future__ import annotations

from aiohttp import web

from .health import READINESS_CHECKS, add_health_routes, create_metrics_app
from .logging import configure_logging, get_logger
from .middleware import SERVICE_NAME, add_request_id_header, metrics_middleware, problem_middleware, request_id_middleware
from .settings import ServiceSettings

SETTINGS = web.AppKey("settings", ServiceSettings)


def create_service_app(settings: ServiceSettings) -> web.Application:
    app = web.Application(
        middlewares=[request_id_middleware, metrics_middleware, problem_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[SERVICE_NAME] = settings.service
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


def run(app: web.Application) -> None:
    settings = app[SETTINGS]
    configure_logging(settings.service, settings.log_level)
    log = get_logger("harbour.service")
    log.info("starting", host=settings.host, port=settings.port)
    app.cleanup_ctx.insert(0, _metrics_listener(settings))
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    log.info("stopped")
