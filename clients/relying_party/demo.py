"""`make demo`: start the demo site next to the running platform, walk the whole journey once, leave the site up.

    python -m clients.relying_party.demo          # start the site, run the journey headless, print each step
    python -m clients.relying_party.demo --stop   # stop the site (`make down` does this too)

The phone in the journey is the seeded `plus` citizen's reference-app profile
(.dev/citizens/chan.json); the printed commands let a person do the same by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from playwright.async_api import async_playwright

from clients.citizen_app import CitizenApp, Profile
from libs.devstack import processes
from libs.devstack.config import REPO_ROOT, dev_dir_from_env

from clients.seed import DEMO_SITE

from .journey import CHROMIUM, CHROMIUM_ARGS, PHONE_VIEWPORT, Journey

SITE_URL = DEMO_SITE  # http://127.0.0.1:8010 unless HARBOUR_DEMO_SITE_URL says otherwise
CITIZEN = "chan"  # the seeded `plus` citizen: only plus identities may sign


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


async def walk(dev_dir: Path, seed: dict) -> None:
    profile = profile_of(seed)
    phone = CitizenApp(Profile.load(profile), profile)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=PHONE_VIEWPORT, locale="en-GB", accept_downloads=True)
            journey = Journey(await context.new_page(), phone, SITE_URL, seed["clients"]["utility"]["client_name"],
                              dev_dir / "screenshots" / "demo", say=lambda line: print("  " + line, flush=True))
            result = await journey.run(dev_dir / "downloads")
        finally:
            await browser.close()
    print(f"  Screenshots: {dev_dir / 'screenshots' / 'demo'} ({len(result.screenshots)} files)")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.relying_party.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop the demo site")
    args = parser.parse_args()
    dev_dir = dev_dir_from_env()
    spec = site_spec(dev_dir)
    if args.stop:
        print("demo site stopped" if processes.stop(spec.pid_file, spec.marker) else "the demo site was not running")
        return 0
    seed = json.loads((dev_dir / "seed.json").read_text())
    pid = start_site(dev_dir)
    print(f"Demo site: {SITE_URL} (pid {pid}, log {spec.log_file})")
    print("Walking the journey headless in Chromium, the seeded citizen's reference app as the phone:")
    asyncio.run(walk(dev_dir, seed))
    app = f"{_here(Path(sys.executable))} -m clients.citizen_app --profile {_here(profile_of(seed))}"
    print(f"""
Now try it yourself: open {SITE_URL} in a browser on this machine, then be the phone with:
  {app} open 'harbourid://authorize?tx=…'   # the login page's fallback link (or its https button's link)
  {app} pending                              # prompts waiting on the phone (pre-fill, signing)
  {app} approve APPROVAL_ID
The site keeps running; `make down` stops it with the platform.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
