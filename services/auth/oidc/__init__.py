"""OpenID Connect and OAuth 2.0, one module per standard (see docs/architecture.md)."""
