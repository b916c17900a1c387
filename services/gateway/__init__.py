"""The gateway: the platform's one front door. For now a streaming pass-through to the owning service."""
