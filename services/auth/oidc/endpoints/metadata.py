"""What clients read before anything else: the provider's metadata (OIDC Discovery 1.0) and its keys (RFC 7517)."""

from __future__ import annotations

import functools

from aiohttp import web

from libs.service.endpoints import Endpoints

from ...callers import AUTH
from .. import discovery
from ..views import JWKS, ProviderMetadata

# /.well-known/ sits outside /oidc: its answers are not the OAuth error handler's.
well_known = Endpoints(tags=("openid-connect",))
endpoints = Endpoints(tags=("openid-connect",))


@well_known.get("/.well-known/openid-configuration", summary="OpenID Connect Discovery metadata",
                answers={200: ProviderMetadata}, headers={"Cache-Control": "max-age=300"})
async def openid_configuration(request: web.Request) -> ProviderMetadata:
    return _provider_metadata(request.config_dict[AUTH].settings.issuer)


@functools.lru_cache(maxsize=4)
def _provider_metadata(issuer: str) -> ProviderMetadata:
    """Built once per issuer: the document changes only with a new release."""
    return discovery.provider_metadata(issuer)


# Short cache: a rotation's next key must reach clients before it signs.
@endpoints.get("/oidc/jwks", summary="The token-signing keys (RFC 7517)", answers={200: JWKS}, headers={"Cache-Control": "max-age=60"})
async def jwks(request: web.Request) -> JWKS:
    return JWKS.model_validate(await request.config_dict[AUTH].keys.jwks())
