"""create_app(settings) -> the signing service's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from libs.service import ServiceSettings, create_service_app
from libs.service.backbone import install_backbone
from libs.service.openapi import install_openapi_route

from .events import TOPICS
from .store import INDEXES

SERVICE = "signing"


def create_app(settings: ServiceSettings | None = None) -> web.Application:
    app = create_service_app(settings or ServiceSettings.from_env(SERVICE))
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    # No public operations yet: the gateway merges an empty document until they arrive.
    install_openapi_route(app, [], title=f"Harbour ID {SERVICE}")
    return app
