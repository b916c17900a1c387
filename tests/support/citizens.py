"""Citizens with a phone: enrolled and activated through the gateway with the citizen app library, in process."""

from __future__ import annotations

from pathlib import Path

from clients.citizen_app import CitizenApp, Profile

from .people import identity, selfie
from .polling import eventually


async def enrolled_app(platform, kiosk, tmp_path: Path, name: str = "phone", *, record=None, person: dict | None = None) -> CitizenApp:
    """A citizen enrolled at the kiosk (a `plus` identity) with an activated device; `record(person, picture)` sees what was sent."""
    person = person or identity()
    picture = selfie()
    if record is not None:
        record(person, picture)
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(person, picture, kiosk=kiosk)
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / f"{name}.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app


async def basic_citizen(platform, tmp_path: Path, name: str = "basic-phone") -> CitizenApp:
    """Self-registered in the sandbox (no kiosk): a `basic` identity with an activated device."""
    enrolment = await CitizenApp(Profile(gateway_url=platform.gateway)).enrol(identity(), selfie())
    app = CitizenApp(Profile(gateway_url=platform.gateway), tmp_path / "basic.json")
    await app.activate(enrolment["account_id"], enrolment["activation_code"], name)
    return app


async def pending_prompt(app: CitizenApp, approval_id: str, *, timeout_s: float = 20) -> dict:
    """The prompt `approval_id` once it reaches the phone's queue (auth hears of it through the broker)."""
    async def find():
        return next((p for p in await app.pending() if p["approval_id"] == approval_id), None)

    return await eventually(find, timeout_s=timeout_s)
