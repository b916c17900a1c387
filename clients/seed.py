"""`make seed`: demo clients and citizens on the running local platform, written to .dev/seed.json.

Two relying parties, one agency and one kiosk (registered with auth's operator
command), and two citizens with activated devices — one `plus` (enrolled at
the kiosk), one `basic` (sandbox self-registration) — each with the data they
enrolled with and their reference-app profile file. Running it again keeps
the existing seed. Pairwise `sub` values per client arrive with the OpenID
Connect issue.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from clients.citizen_app import CitizenApp, Profile
from libs.devstack import load_running_stack
from libs.devstack.stack import REPO_ROOT

CLIENTS = [
    {"key": "bank", "kind": "relying_party", "name": "Harbour Demo Bank", "scopes": ["openid", "formfill", "sign"]},
    {"key": "tax", "kind": "relying_party", "name": "Harbour Tax Portal", "scopes": ["openid", "formfill"]},
    {"key": "transport", "kind": "agency", "name": "Transport Department", "scopes": ["notify"]},
    {"key": "kiosk", "kind": "kiosk", "name": "Registration Kiosk, Wan Chai", "scopes": ["enrol"]},
]
CITIZENS = [
    {
        "key": "chan",
        "assurance": "plus",
        "identity": {
            "id_number": "A123456(3)", "name_en": "CHAN Tai Man", "name_zh": "陳大文", "date_of_birth": "1985-03-14",
            "gender": "M", "phone": "+85291234567", "email": "chan.taiman@example.hk",
            "address": "Flat 12A, 8 Harbour Road, Wan Chai, Hong Kong", "language": "zh-HK",
        },
    },
    {
        "key": "wong",
        "assurance": "basic",
        "identity": {
            "id_number": "AB987654(3)", "name_en": "WONG Mei Ling", "name_zh": "黃美玲", "date_of_birth": "1999-11-02",
            "gender": "F", "phone": "+85262345678", "email": "wong.meiling@example.hk",
            "address": "Room 5, 3/F, 22 Nathan Road, Tsim Sha Tsui, Kowloon", "language": "en",
        },
    },
]


def demo_selfie(seed: int) -> bytes:
    """A made-up portrait: varied enough to pass the local proofing check, obviously not a person."""
    image = Image.frombytes("RGB", (240, 240), os.urandom(240 * 240 * 3))
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 40, 180, 190), fill=(230, 190, 160 - seed * 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def register(env: dict, client: dict) -> dict:
    args = ["create-client", "--kind", client["kind"], "--name", client["name"]]
    for scope in client["scopes"]:
        args += ["--scope", scope]
    result = subprocess.run([sys.executable, "-m", "services.auth.admin", *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


async def seed(dev_dir: Path) -> dict:
    stack = load_running_stack(dev_dir)
    if stack is None:
        raise SystemExit("the platform is not running: `make up` first")
    env = {**os.environ, **stack.config.service_env()}
    gateway = stack.config.service_url("gateway")
    clients = {c["key"]: {**register(env, c), "kind": c["kind"]} for c in CLIENTS}
    kiosk = (clients["kiosk"]["client_id"], clients["kiosk"]["client_secret"])
    citizens = {}
    for number, citizen in enumerate(CITIZENS):
        profile_path = dev_dir / "citizens" / f"{citizen['key']}.json"
        app = CitizenApp(Profile(gateway_url=gateway), profile_path)
        enrolment = await app.enrol(
            citizen["identity"], demo_selfie(number), kiosk=kiosk if citizen["assurance"] == "plus" else None
        )
        await app.activate(enrolment["account_id"], enrolment["activation_code"], f"{citizen['key']}-phone")
        citizens[citizen["key"]] = {
            "account_id": enrolment["account_id"],
            "assurance": enrolment["assurance"],
            "enrolled_with": citizen["identity"],
            "profile": str(profile_path),
            "device_id": app.profile.device_id,
            "sub": {},  # pairwise subject per client: with the OpenID Connect issue
        }
    return {"gateway": gateway, "clients": clients, "citizens": citizens}


def main() -> int:
    dev_dir = Path(os.environ.get("HARBOUR_DEV_DIR", REPO_ROOT / ".dev"))
    path = dev_dir / "seed.json"
    if path.exists():
        print(f"{path} exists; keeping it (make clean starts afresh)")
        return 0
    result = asyncio.run(seed(dev_dir))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
    print(f"wrote {path}: {len(result['clients'])} clients, {len(result['citizens'])} citizens with activated devices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
