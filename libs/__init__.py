"""Shared code every Harbour ID service uses. No service imports another service."""
