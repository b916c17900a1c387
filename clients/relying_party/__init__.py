"""Demo online service: "Harbour Power", a utility that opens electricity accounts with Harbour ID.

A relying party as a real one would be built: an aiohttp website using an
off-the-shelf OpenID Connect client (Authlib, `private_key_jwt`, PKCE), form
filling to pre-fill its application, signing to have the citizen sign the
application PDF, and a confirmation notification. It talks to the platform
only through the gateway's public API.
"""
