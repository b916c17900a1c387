"""The kinds of token auth issues, named once for the issuer and every verifier."""

# RFC 9068 JWT access tokens: a relying party's or agency's (audience = the issuer) and a device token.
ACCESS_TOKEN_TYP = "at+jwt"
# A citizen's device token is meant for the platform's device endpoints, never for a relying party.
DEVICE_AUDIENCE = "harbour-device"
