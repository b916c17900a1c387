"""The citizen's personal-data export (issue 18): each service's part, signed by that service.

Each service owns its database and no service calls another over HTTP
(docs/architecture.md, the rules), so no one service can gather the whole
picture. Each service answers its own part instead, for the citizen's own
device only (`GET .../export` with a device token, whose `sub` is the
account): the citizen's data as that service holds it, opened for them
(the vault's fields, inbox messages, contact details, prompts' text), as a
compact JWS (ES256) signed with a key that service already publishes in a
JWKS (auth `/oidc/jwks`, formfill `/v1/formfill/jwks`, notify
`/v1/notifications/jwks`, signing `/v1/signing/jwks`). The citizen's app
gathers the parts into one document (clients/citizen_app `export`), with a
copy of each JWKS so the file can be verified after a key rotation too.

The JWS header says `typ: harbour-export+jwt`; its payload carries `iss` (the
platform's issuer), `sub` (the account id), `iat`, `jti`, `service` and
`data`, and neither `aud` nor `exp`: it cannot pass for a token anywhere
(every token check of the platform and any OIDC library requires `exp`, and
an `aud` naming it). auth's part names the parts a complete export has
(`data.parts_expected`), so a part left out shows. Each part is audited
(`data.export`, ids and counts only); nothing of its content is logged.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from libs.tokens.jws import sign

TYP = "harbour-export+jwt"
PARTS = ("auth", "formfill", "notify", "signing")
JWKS_PATHS = {"auth": "/oidc/jwks", "formfill": "/v1/formfill/jwks", "notify": "/v1/notifications/jwks",
              "signing": "/v1/signing/jwks"}
EXPORT_PATHS = {"auth": "/v1/account/export", "formfill": "/v1/formfill/export", "notify": "/v1/notify/export",
                "signing": "/v1/signing/export"}
AUDIT_ACTION = "data.export"


class ExportPart(BaseModel):
    __doc__ = """One service's part of the citizen's personal-data export."""

    model_config = ConfigDict(extra="forbid")
    service: str
    jwks_uri: str
    jws: str


def plain(value: Any) -> Any:
    """A stored document as JSON: datetimes as ISO 8601, bytes as unpadded base64url, other values as text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.urlsafe_b64encode(bytes(value)).rstrip(b"=").decode()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def without(doc: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    """`doc` without `keys` (secrets and sealed blobs the citizen gets opened, or not at all)."""
    return None if doc is None else {k: v for k, v in doc.items() if k not in keys}


async def signed_part(ctx: Any, keys: Any, service: str, device: Any, data: dict[str, Any], **counts: int) -> ExportPart:
    """`data` signed by `service` with its current published key, and the export's audit record.

    `ctx` is the service's ServiceContext, `keys` its libs.tokens KeyStore, `device` the libs.callers Device
    (or auth's DeviceContext) that asked: the part is the data of that device's own account."""
    key = await keys.current()
    now = ctx.clock.now()
    payload = {"iss": ctx.settings.issuer, "sub": device.account_id, "iat": int(now.timestamp()), "jti": uuid.uuid4().hex,
               "service": service, "data": plain(data)}
    token = sign(payload, key.private_key, {"kid": key.kid, "typ": TYP})
    await ctx.transaction(lambda session: ctx.audit(
        session, subject=device.account_id, action=AUDIT_ACTION, actor=device.device_id, part=service,
        export_id=payload["jti"], **counts))
    return ExportPart(service=service, jwks_uri=ctx.settings.issuer + JWKS_PATHS[service], jws=token)
