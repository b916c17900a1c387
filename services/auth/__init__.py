"""The auth service: citizen accounts, devices, approvals, the client registry and the OpenID Connect provider (docs/architecture.md)."""
