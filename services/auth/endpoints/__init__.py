"""auth's HTTP side outside the OpenID Connect provider: one module per group of endpoints.

clients.py (the client registry, RFC 7591/7592), enrolment.py, devices.py
(binding the first device, device tokens, listing and revoking) and
approvals.py (the citizen's prompts and decisions; approval_stream.py, the new ones live) and account.py
(asking to close the account), web_app.py (the citizen's web app under /app/) and export.py (auth's part of the citizen's data export). Each endpoint is declared
once with its caller, body, answers and refusals (libs/service/endpoints.py),
which also make its OpenAPI operation. Handlers call the domain and answer;
refusals are raised below and rendered by the service kit, so no handler
catches one. The provider's endpoints are oidc/endpoints/.
"""

from __future__ import annotations

from . import account, approval_stream, approvals, clients, devices, enrolment, export, profile, web_app

# The stream before approvals.py: its /v1/approvals/{approval_id} would otherwise take /v1/approvals/stream.
ENDPOINTS = (clients.endpoints, enrolment.endpoints, devices.endpoints, approval_stream.endpoints, approvals.endpoints,
             account.endpoints, profile.endpoints, export.endpoints, web_app.endpoints)

# Every route of those groups, for app.add_routes.
routes = [route for group in ENDPOINTS for route in group.routes]
