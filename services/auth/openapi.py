"""auth's OpenAPI document: the operations its endpoints declare with their routes (libs/service/endpoints.py).

The clients, enrolment, devices and approvals endpoints (endpoints/) and the
OpenID Connect provider's (oidc/endpoints/) each declare their operation
where they are routed; the answers are the very models the domain returns
or the handlers parse with (the schemathesis run in
tests/e2e/test_openapi_schemathesis.py catches a drift).
"""

from __future__ import annotations

from libs.service.openapi import Operation

from .endpoints import ENDPOINTS
from .oidc.endpoints import OPERATIONS as OIDC_OPERATIONS

TITLE = "Harbour ID auth"

OPERATIONS: tuple[Operation, ...] = (*(op for group in ENDPOINTS for op in group.operations), *OIDC_OPERATIONS)
