"""What protects a device's key, as the device declared it when it was bound, and what a login may claim from it.

At activation or pairing the app says how its key is kept (`key_protection`):

- `storage`: "software" only. A hardware-held key ("hwk", RFC 8176) would
  need an attestation auth can verify (a platform key-attestation chain);
  none is supported, so a claim of hardware is refused (422, like any invalid body)
  rather than recorded: auth never writes down what it cannot check.
- `user_verification`: "pin" when the key is sealed under a PIN or passphrase
  the app asks for before every signature; "passkey" when every approval is
  also verified by a WebAuthn passkey with user verification (the web app,
  devices/passkeys.py: registered with the device, asserted over each
  prompt's digest and checked by auth); else "none".

Devices bound before this was asked are software keys without a PIN.

Each device-signed decision says whether the PIN was asked for it (`uv`).
auth believes "pin" only from a device registered with "pin"; the ID token's
`amr` is then ["swk", "pin"], else ["swk"]. It is the app's word: a software
app could lie about its own PIN, which is why the claim only ever narrows
what the registration allows and never adds "hwk".

A passkey approval is not the app's word: auth verified the assertion (the
authenticator's UV flag set, over the prompt's digest). Its `amr` is
["swk", "user", "mfa"]: the software device key, the user verified by the
authenticator, two factors. Never "hwk" (attestation "none" proves nothing of
the authenticator) nor "fpt"/"face" (auth cannot know how it verified).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SOFTWARE, HARDWARE = "software", "hardware"
PIN, PASSKEY, NONE = "pin", "passkey", "none"


class KeyProtection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage: Literal["software"] = Field(
        default=SOFTWARE,
        description="where the private key is kept: software (a hardware key needs an attestation auth can verify; "
                    "none is supported, so hardware is refused)")
    user_verification: Literal["pin", "passkey", "none"] = Field(
        default=NONE, description="pin: the key is sealed under a PIN or passphrase asked before every signature; "
                                  "passkey: every approval carries a WebAuthn assertion with user verification (the "
                                  "request's `passkey` registers it)")

    def on_device(self) -> dict[str, str]:
        """The fields stored on the device's document."""
        return {"key_storage": self.storage, "user_verification": self.user_verification}


def registered(device: dict) -> tuple[str, str]:
    """(key storage, user verification) as the device registered them; older devices: software, none."""
    return device.get("key_storage", SOFTWARE), device.get("user_verification", NONE)


def authentication_methods(key_storage: str, registered_uv: str, claimed_uv: str | None, *,
                           passkey_verified: bool = False) -> list[str]:
    """RFC 8176 `amr` for one device-signed approval: the key's kind, and "pin" when the device registered a PIN
    and says it asked for it this time; "user" and "mfa" when the device registered a passkey and auth verified its
    assertion (with user verification) for this approval."""
    methods = ["hwk" if key_storage == HARDWARE else "swk"]
    if registered_uv == PASSKEY and passkey_verified:
        methods += ["user", "mfa"]
    elif registered_uv == PIN and claimed_uv == PIN:
        methods.append("pin")
    return methods
