"""`make demo`: start the demo site next to the running platform, walk the whole journey once, leave the site up.

    python -m clients.relying_party.demo          # start the site, run the journey headless, print each step
    python -m clients.relying_party.demo --stop   # stop the site (`make down` does this too)

The phone in the journey is the citizen web app (served at /app/) in a second, phone-sized browser context with a
virtual passkey authenticator and a camera (web_phone.WebPhone): the seeded citizen enrolled at the kiosk without a
phone (`lee`) gets a new kiosk slip each run (a kiosk replacement: a new activation code), binds the app with it,
scans the login page's QR code, approves the form fill and the signature, and reads the confirmation in the app's
inbox. Screenshots of both browsers go to .dev/screenshots/demo/. The printed commands let a person do the same by
hand. (A .dev/seed.json written before the web app had no such citizen: then the seeded `chan`'s command-line
reference app plays the phone, as before; `make clean` starts afresh.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from playwright.async_api import async_playwright

from clients.citizen_app import CitizenApp, Profile
from libs.devstack import processes
from libs.devstack.config import REPO_ROOT, dev_dir_from_env

from clients.seed import DEMO_SITE, demo_selfie

from .journey import CHROMIUM, CHROMIUM_ARGS, DESKTOP_VIEWPORT, CliPhone, Journey, Phone
from .web_phone import WebPhone, app_url, camera_args

SITE_URL = DEMO_SITE  # http://127.0.0.1:8010 unless HARBOUR_DEMO_SITE_URL says otherwise
CITIZEN = "chan"  # the seeded `plus` citizen with the command-line app: only plus identities may sign
WEB_CITIZEN = "lee"  # the seeded `plus` citizen with no phone: the web app binds with a new kiosk slip each run


def profile_of(seed: dict) -> Path:
    return Path(seed["citizens"][CITIZEN]["profile"])


def _here(path: Path) -> str:
    """A path as a person types it from the repository root."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def site_spec(dev_dir: Path) -> processes.ProcessSpec:
    seed = dev_dir / "seed.json"
    return processes.ProcessSpec(
        name="relying_party", argv=[sys.executable, "-m", "clients.relying_party", "--seed", str(seed), "--url", SITE_URL],
        marker="clients.relying_party", cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT)},
        log_file=dev_dir / "logs" / "relying_party.log", pid_file=dev_dir / "run" / "relying_party.pid",
    )


def start_site(dev_dir: Path) -> int:
    spec = site_spec(dev_dir)
    pid = processes.start(spec)
    processes.wait_until(lambda: processes.http_ok(SITE_URL + "/static/site.css") or not processes.is_alive(pid),
                         timeout_s=30, what=f"the demo site at {SITE_URL}")
    if not processes.is_alive(pid):
        raise SystemExit(f"the demo site exited at start; see {spec.log_file}")
    return pid


async def new_slip(seed: dict) -> dict:
    """At the kiosk again (a new phone): the same account, every earlier device revoked, a new activation code."""
    kiosk = seed["clients"]["kiosk"]
    citizen = seed["citizens"][WEB_CITIZEN]
    return await CitizenApp(Profile(gateway_url=seed["gateway"])).replace_at_kiosk(
        citizen["enrolled_with"], demo_selfie(2), kiosk=(kiosk["client_id"], kiosk["client_secret"]))


async def walk(dev_dir: Path, seed: dict) -> None:
    screenshots = dev_dir / "screenshots" / "demo"
    say = lambda line: print("  " + line, flush=True)  # noqa: E731
    camera = dev_dir / "camera.y4m"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *camera_args(camera)])
        web_phone = None
        try:
            phone: Phone
            if WEB_CITIZEN in seed["citizens"]:
                slip = await new_slip(seed)
                web_phone = phone = await WebPhone(browser, app_url(seed["gateway"]), camera, screenshots=screenshots).open()
                await web_phone.bind(slip["account_id"], slip["activation_code"], "Lee's phone")
                say(f"0. The phone: the web app at {web_phone.app_url} bound with the kiosk slip ({slip['account_id']}) "
                    "and a passkey (a virtual authenticator with user verification).")
            else:
                profile = profile_of(seed)
                phone = CliPhone(CitizenApp(Profile.load(profile), profile))
                say("0. The phone: the command-line reference app (this .dev/seed.json has no citizen for the web app).")
            context = await browser.new_context(viewport=DESKTOP_VIEWPORT, locale="en-GB", accept_downloads=True)
            journey = Journey(await context.new_page(), phone, SITE_URL, seed["clients"]["utility"]["client_name"],
                              screenshots, say=say)
            result = await journey.run(dev_dir / "downloads")
        finally:
            if web_phone is not None:
                await web_phone.close()
            await browser.close()
    shots = len(result.screenshots) + (len(web_phone.shots) if web_phone else 0)
    print(f"  Screenshots of the computer and the phone: {screenshots} ({shots} files)")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.relying_party.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop the demo site")
    parser.add_argument("--slip", action="store_true",
                        help="a new kiosk slip for the web app's demo citizen (revokes the phone bound before)")
    args = parser.parse_args()
    dev_dir = dev_dir_from_env()
    spec = site_spec(dev_dir)
    if args.stop:
        print("demo site stopped" if processes.stop(spec.pid_file, spec.marker) else "the demo site was not running")
        return 0
    seed = json.loads((dev_dir / "seed.json").read_text())
    if args.slip:
        slip = asyncio.run(new_slip(seed))
        print(f"account id: {slip['account_id']}\nactivation code: {slip['activation_code']} "
              f"(until {slip['activation_expires_at']})\nopen {app_url(seed['gateway'])}")
        return 0
    pid = start_site(dev_dir)
    print(f"Demo site: {SITE_URL} (pid {pid}, log {spec.log_file})")
    print("Walking the journey headless in Chromium: a computer at the site, a phone-sized browser running the web app:")
    asyncio.run(walk(dev_dir, seed))
    app = f"{_here(Path(sys.executable))} -m clients.citizen_app --profile {_here(profile_of(seed))}"
    print(f"""
The web app: {app_url(seed["gateway"])} (Chrome; a computer without a passkey can emulate one in DevTools,
More tools > WebAuthn); `{_here(Path(sys.executable))} -m clients.relying_party.demo --slip` prints a new kiosk slip
(account id and activation code) to bind it with.
Now try it yourself: open {SITE_URL} in a browser on this machine, then be the phone with:
  {app} open 'harbourid://authorize?tx=…'   # the login page's fallback link (or its https button's link)
  {app} pending                              # prompts waiting on the phone (pre-fill, signing)
  {app} approve APPROVAL_ID
The site keeps running; `make down` stops it with the platform.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
