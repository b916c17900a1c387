"""`make seed`: demo clients and citizens on the running local platform, written to .dev/seed.json.

Two relying parties, one agency and one kiosk (registered with auth's operator
command), and two citizens with activated devices — one `plus` (enrolled at
the kiosk), one `basic` (sandbox self-registration) — each with the data they
enrolled with and their reference-app profile file; and a third, `plus`,
enrolled at the kiosk with no phone bound (the web app's demo, `make demo`). Running it again keeps
the existing seed. Each citizen's pairwise `sub` at every seeded client is
listed; the bank authenticates with private_key_jwt (key file in .dev/keys/).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from clients.citizen_app import CitizenApp, Profile
from libs.devstack import load_running_stack
from libs.tokens import generate_private_key, public_jwk
from libs.devstack.config import dev_dir_from_env
from services.auth import admin as auth_admin

# Where `make demo` serves the demo site (clients/relying_party); its redirect URIs are registered for it.
DEMO_SITE = os.environ.get("HARBOUR_DEMO_SITE_URL", "http://127.0.0.1:8010")
CLIENTS = [
    # The bank authenticates with private_key_jwt (its key file is in .dev/keys/), the tax portal with a secret.
    # Every seeded relying party and agency reads its own topic agency.<client_id>.events (`agency_events`), so
    # `python -m clients.agency_consumer --client-id …` shows what the demo did (README's tour).
    {"key": "bank", "kind": "relying_party", "name": "Harbour Demo Bank", "scopes": ["openid", "offline_access", "formfill", "sign", "notify"],
     "redirect_uris": [f"{DEMO_SITE}/bank/callback"], "auth_method": "private_key_jwt", "agency_events": True},
    {"key": "tax", "kind": "relying_party", "name": "Harbour Tax Portal", "scopes": ["openid", "offline_access", "formfill"],
     "redirect_uris": [f"{DEMO_SITE}/tax/callback"], "agency_events": True},
    # The demo online service (clients/relying_party, `make demo`): logs in, pre-fills, has applications signed, notifies.
    {"key": "utility", "kind": "relying_party", "name": "Harbour Power & Light", "scopes": ["openid", "formfill", "sign", "notify"],
     "redirect_uris": [f"{DEMO_SITE}/callback"], "auth_method": "private_key_jwt",
     "formfill_fields": ["name_en", "address", "phone", "email"], "agency_events": True},
    {"key": "transport", "kind": "agency", "name": "Transport Department", "scopes": ["notify"], "agency_events": True},
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
    {
        # Enrolled at the kiosk, no phone bound: the citizen web app's demo (`make demo` gets a new slip for her
        # each run, as a kiosk does for a new phone, and binds the app in a phone-sized browser with it).
        "key": "lee",
        "assurance": "plus",
        "bind": False,
        "identity": {
            "id_number": "C246801(6)", "name_en": "LEE Ka Yan", "name_zh": "李嘉欣", "date_of_birth": "1992-07-21",
            "gender": "F", "phone": "+85293456789", "email": "lee.kayan@example.hk",
            "address": "Flat 3C, 15 Caine Road, Mid-Levels, Hong Kong", "language": "en",
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


async def admin(*args: str) -> dict:
    """Auth's operator command, in this process (the same code as `python -m services.auth.admin`, without
    starting a Python per call: the seed makes fifteen of them)."""
    return await auth_admin.run(auth_admin.parser().parse_args([*args, "--operator", "seed", "--reason", "make seed: demo data"]))


def write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


async def register(client: dict, keys_dir: Path) -> dict:
    args = ["create-client", "--kind", client["kind"], "--name", client["name"]]
    for scope in client["scopes"]:
        args += ["--scope", scope]
    for field_name in client.get("formfill_fields", []):
        args += ["--formfill-field", field_name]
    if client.get("agency_events"):
        args.append("--agency-events")
    for uri in client.get("redirect_uris", []):
        args += ["--redirect-uri", uri, "--post-logout-redirect-uri", uri.rsplit("/", 1)[0] + "/"]
    files: dict[str, str] = {}
    if client.get("auth_method") == "private_key_jwt":
        key = generate_private_key()
        jwk = public_jwk(key) | {"kid": f"{client['key']}-1", "use": "sig", "alg": "ES256"}
        key_file, jwks_file = keys_dir / f"{client['key']}.pem", keys_dir / f"{client['key']}.jwks.json"
        write_private(key_file, Profile.pem_of(key))
        write_private(jwks_file, json.dumps({"keys": [jwk]}))
        args += ["--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file)]
        files = {"private_key_file": str(key_file), "jwks_file": str(jwks_file), "key_id": jwk["kid"]}
    return {**await admin(*args), **files}


async def seed(dev_dir: Path) -> dict:
    stack = load_running_stack(dev_dir)
    if stack is None:
        raise SystemExit("the platform is not running: `make up` first")
    os.environ.update(stack.config.service_env())  # the operator command reads auth's settings from the environment
    gateway = stack.config.service_url("gateway")
    clients = {c["key"]: {**await register(c, dev_dir / "keys"), "kind": c["kind"]} for c in CLIENTS}
    kiosk = (clients["kiosk"]["client_id"], clients["kiosk"]["client_secret"])
    citizens = {}
    for number, citizen in enumerate(CITIZENS):
        profile_path = dev_dir / "citizens" / f"{citizen['key']}.json"
        app = CitizenApp(Profile(gateway_url=gateway), profile_path if citizen.get("bind", True) else None)
        enrolment = await app.enrol(
            citizen["identity"], demo_selfie(number), kiosk=kiosk if citizen["assurance"] == "plus" else None
        )
        bound = citizen.get("bind", True)
        if bound:
            await app.activate(enrolment["account_id"], enrolment["activation_code"], f"{citizen['key']}-phone")
        citizens[citizen["key"]] = {
            "account_id": enrolment["account_id"],
            "assurance": enrolment["assurance"],
            "enrolled_with": citizen["identity"],
            "profile": str(profile_path) if bound else None,
            "device_id": app.profile.device_id if bound else None,
            # The pairwise subject this citizen has at each seeded client.
            "sub": {key: (await admin("subject", enrolment["account_id"], c["client_id"]))["sub"] for key, c in clients.items()},
        }
    return {"gateway": gateway, "clients": clients, "citizens": citizens}


def main() -> int:
    dev_dir = dev_dir_from_env()
    path = dev_dir / "seed.json"
    if path.exists():
        print(f"{path} exists; keeping it (make clean starts afresh)")
        return 0
    result = asyncio.run(seed(dev_dir))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
    print(f"wrote {path}: {len(result['clients'])} clients, {len(result['citizens'])} citizens (one for the web app, no device yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
