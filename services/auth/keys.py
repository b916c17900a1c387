"""auth's token-signing key: ES256, private part encrypted at rest under the KEK.

One current key, created by whichever replica starts first (an atomic
upsert, so replicas agree). JWKS publication and rotation come with the
OpenID Connect issue; the key id is the RFC 7638 thumbprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from libs.crypto import FieldCipher, Keyring
from libs.tokens import InvalidToken, generate_private_key, public_jwk, sign, thumbprint, unverified_header, verify

from .store import SIGNING_KEYS


@dataclass(frozen=True)
class TokenKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.private_key) | {"kid": self.kid, "use": "sig", "alg": "ES256"}


class TokenSigner:
    def __init__(self, key: TokenKey, issuer: str) -> None:
        self.key = key
        self.issuer = issuer

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        return sign({"iss": self.issuer, **claims}, self.key.private_key, headers={"kid": self.key.kid, "typ": typ})

    def verify(self, token: str, *, audience: str, typ: str | None = None) -> dict[str, Any]:
        if unverified_header(token).get("kid") != self.key.kid:
            raise InvalidToken("the token was signed by an unknown key")
        return verify(
            token,
            self.key.private_key.public_key(),
            audience=audience,
            issuer=self.issuer,
            require=("exp", "iat", "sub", "aud", "iss"),
            typ=typ,
        )


async def load_or_create_key(db: AsyncDatabase, keyring: Keyring) -> TokenKey:
    cipher = FieldCipher(keyring)
    candidate = generate_private_key()
    kid = thumbprint(public_jwk(candidate))
    pem = candidate.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    doc = await db[SIGNING_KEYS].find_one_and_update(
        {"_id": "current"},
        {
            "$setOnInsert": {
                "kid": kid,
                "sealed_private_key": cipher.encrypt_record({"pem": pem}, record_id=kid),
                "created_at": datetime.now(UTC),
            }
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    opened = cipher.decrypt_record(doc["sealed_private_key"], record_id=doc["kid"])
    private_key = serialization.load_pem_private_key(opened["pem"].encode(), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return TokenKey(kid=doc["kid"], private_key=private_key)
