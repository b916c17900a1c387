"""Liveness, readiness and metrics endpoints.

`/healthz` says the process answers. `/readyz` runs every registered check
(MongoDB ping, Kafka metadata, the revocation list...) concurrently, each
under a timeout, and is 503 while any fails, so Kubernetes stops routing to a
pod that cannot do its work. A report (`add_readiness_report`: the gateway's
upstreams) is shown in the body for information and never makes a pod
unready. `/metrics` is not on the service's own listener:
`create_metrics_app` serves it on the internal metrics port (app.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

ReadinessCheck = Callable[[], Awaitable[object]]
ReadinessReport = Callable[[], dict[str, str]]
READINESS_CHECKS = web.AppKey("readiness_checks", dict)
READINESS_REPORTS = web.AppKey("readiness_reports", dict)
CHECK_TIMEOUT_S = 2.0


def add_readiness_check(app: web.Application, name: str, check: ReadinessCheck) -> None:
    """Register a coroutine that raises (or times out) while `name` is not usable."""
    app[READINESS_CHECKS][name] = check


def add_readiness_report(app: web.Application, section: str, report: ReadinessReport) -> None:
    """Show `report()` under `section` in every /readyz body, for information: it never makes the pod unready."""
    if READINESS_REPORTS not in app:
        app[READINESS_REPORTS] = {}
    app[READINESS_REPORTS][section] = report


async def _run_check(check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        return "ok"
    except asyncio.TimeoutError:
        return "timeout"
    except Exception as exc:  # readiness reports every failure, it never raises
        return f"error: {type(exc).__name__}"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS_CHECKS]
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
    report = dict(zip(names, results))
    ready = all(r == "ok" for r in results)
    body: dict[str, object] = {"status": "ready" if ready else "unready", "checks": report}
    for section, shown in request.app.get(READINESS_REPORTS, {}).items():
        body[section] = shown()
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def create_metrics_app() -> web.Application:
    """The internal listener's app: GET /metrics and nothing else."""
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app
