"""Citizen devices: binding the first one with an activation code, device tokens, listing and revoking."""
