"""create_app(settings) -> the auth service's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from libs.service import ServiceSettings, create_service_app
from libs.service.backbone import install_backbone

from .events import TOPICS
from .store import INDEXES

SERVICE = "auth"


def create_app(settings: ServiceSettings | None = None) -> web.Application:
    app = create_service_app(settings or ServiceSettings.from_env(SERVICE))
    install_backbone(app, indexes=INDEXES, topics=TOPICS)
    return app
