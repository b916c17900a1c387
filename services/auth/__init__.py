"""The auth service: Citizen accounts, devices, approvals and the OpenID Connect provider (DESIGN.md §5)."""
