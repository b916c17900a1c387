"""The routing table: which public path prefix belongs to which service (DESIGN.md §10).

Declarative on purpose: the gateway issue adds a policy (public, client,
bearer with scopes, device) to each row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    prefix: str
    upstream: str


ROUTES: tuple[Route, ...] = (
    Route("/.well-known/openid-configuration", "auth"),
    Route("/oidc", "auth"),
    Route("/v1/clients", "auth"),
    Route("/v1/enrolments", "auth"),
    Route("/v1/devices", "auth"),
    Route("/v1/approvals", "auth"),
    Route("/v1/formfill", "formfill"),
    Route("/v1/consents", "formfill"),
    Route("/v1/notifications", "notify"),
    Route("/v1/templates", "notify"),
    Route("/v1/inbox", "notify"),
    Route("/v1/preferences", "notify"),
    Route("/v1/signing", "signing"),
)
