"""A prompt's relying-party text kept confidential: sealed to auth on the way, encrypted at rest in auth.

The purpose and the details (document name, field names, binding message...)
are free text a relying party wrote about a citizen's business, so they are
personal data. Only the citizen's phone needs them, and auth to check the
decision's digest. So:

- `approval.requested` carries the request's clear part (ids, action,
  requester, matching code, expiry: what notify and the outboxes need) and the
  whole request sealed to auth's public key (`seal_prompt` / `unseal_prompt`);
- `opened_in_app` (only when true) says the citizen's app asked for the
  prompt itself, by opening the request's link: the phone already shows it,
  so notify sends no "approve on your phone" message (a login opened by QR
  code pushes none either). It is outside the prompt and its digest;
- auth's prompt queue keeps the same clear part and the confidential part
  encrypted with auth's field cipher (`encrypt_prompt` / `decrypt_prompt`).

The digest is always computed over the whole plaintext request, exactly as
before, so the phone signs what it showed and the requesting service's own
digest still matches.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from libs.crypto import DecryptionError, FieldCipher
from libs.crypto.sealing import SealError, seal, unseal

from .prompt import ApprovalRequest, canonical_json

CONFIDENTIAL = ("purpose", "details")
SEALED_KEY = "sealed_request"
OPENED_IN_APP = "opened_in_app"


class PromptUnreadable(ValueError):
    """A sealed or encrypted prompt that cannot be opened, or whose clear part does not match it."""


def clear_part(request: ApprovalRequest) -> dict[str, Any]:
    """The request without the relying party's free text (JSON form)."""
    return request.model_dump(mode="json", exclude=set(CONFIDENTIAL))


def seal_prompt(request: ApprovalRequest, auth_public_jwk: dict[str, Any], *, opened_in_app: bool = False) -> dict[str, Any]:
    """The `approval.requested` event data: the clear part, and the whole request sealed to auth; `opened_in_app`:
    the citizen's app asked for it (opened the request's link), so no message need call them to the app."""
    data = {**clear_part(request), SEALED_KEY: seal(request.model_dump(mode="json"), auth_public_jwk)}
    return {**data, OPENED_IN_APP: True} if opened_in_app else data


def opened_in_app(data: dict[str, Any]) -> bool:
    """Whether an `approval.requested` says the citizen's app asked for the prompt itself."""
    return data.get(OPENED_IN_APP) is True


def unseal_prompt(data: dict[str, Any], auth_private_jwk: dict[str, Any]) -> ApprovalRequest:
    """auth's side: open the sealed request and check the clear part says the same."""
    token = data.get(SEALED_KEY)
    if not isinstance(token, str):
        raise PromptUnreadable("the prompt is not sealed to auth")
    if any(name in data for name in CONFIDENTIAL):
        raise PromptUnreadable("the prompt carries its free text in the clear")
    try:
        request = ApprovalRequest.model_validate(unseal(token, auth_private_jwk))
    except (SealError, ValidationError) as exc:
        raise PromptUnreadable(f"the sealed prompt cannot be read: {type(exc).__name__}") from None
    _same(request, {k: v for k, v in data.items() if k not in (SEALED_KEY, OPENED_IN_APP)})
    return request


def encrypt_prompt(cipher: FieldCipher, request: ApprovalRequest) -> dict[str, Any]:
    """Stored form: {"request": clear part, "sealed": the purpose and details under the field cipher}."""
    return {
        "request": clear_part(request),
        "sealed": cipher.encrypt_record(
            {"purpose": request.purpose, "details": canonical_json(request.details).decode()},
            record_id=_record_id(request.approval_id),
        ),
    }


def decrypt_prompt(cipher: FieldCipher, stored: dict[str, Any]) -> ApprovalRequest:
    """The whole request back from `encrypt_prompt`'s form (the digest recomputes to the same value)."""
    clear = stored["request"]
    try:
        opened = cipher.decrypt_record(stored["sealed"], record_id=_record_id(clear["approval_id"]))
        return ApprovalRequest.model_validate(
            {**clear, "purpose": opened["purpose"], "details": json.loads(opened["details"])}
        )
    except (DecryptionError, KeyError, ValueError) as exc:  # ValidationError is a ValueError
        raise PromptUnreadable(f"the stored prompt cannot be read: {type(exc).__name__}") from None


def _same(request: ApprovalRequest, clear: dict[str, Any]) -> None:
    try:
        claimed = ApprovalRequest.model_validate({**clear, "purpose": request.purpose, "details": request.details})
    except ValidationError:
        raise PromptUnreadable("the prompt's clear part is malformed") from None
    if claimed != request:
        raise PromptUnreadable("the prompt's clear part does not match its sealed request")


def _record_id(approval_id: str) -> str:
    # Scoped, so a ciphertext from another of auth's encrypted records can never open as a prompt.
    return f"approval:{approval_id}"
