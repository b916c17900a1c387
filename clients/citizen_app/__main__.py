"""python -m clients.citizen_app --profile FILE <command> — the reference citizen app on the command line.

Commands print JSON on stdout; a refusal prints the problem on stderr and exits 1.

The device key is sealed under a PIN or passphrase (profile.py). `activate` and `pair-start` ask for a new one
(`--no-pin`: none, the key kept in the clear and registered so: logins never claim a PIN); every command that signs
(approve, deny, open, and any that needs a device token) asks for it. The PIN is read from HARBOUR_APP_PIN (scripts;
`set-pin` reads the new one from HARBOUR_APP_NEW_PIN), else asked on the terminal; never from the command line,
where other users' `ps` and the shell's history would show it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path

from .app import AppError, CitizenApp
from .profile import Profile, ProfileError, check_new_pin

PIN_ENV, NEW_PIN_ENV = "HARBOUR_APP_PIN", "HARBOUR_APP_NEW_PIN"


class PlainText(str):
    """A result printed as it is, not as JSON."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clients.citizen_app", description=__doc__)
    parser.add_argument("--profile", required=True, type=Path, help="the app's profile file (holds the device key; mode 0600)")
    parser.add_argument("--gateway", default=os.environ.get("HARBOUR_GATEWAY_URL", "http://127.0.0.1:8000"))
    commands = parser.add_subparsers(dest="command", required=True)

    enrol = commands.add_parser("enrol", help="enrol (sandbox self-registration, or at a kiosk with --kiosk-id/--kiosk-secret)")
    enrol.add_argument("--id-number", required=True)
    enrol.add_argument("--name-en", required=True)
    enrol.add_argument("--name-zh")
    enrol.add_argument("--date-of-birth", required=True, help="YYYY-MM-DD")
    enrol.add_argument("--gender", required=True, choices=["F", "M", "X"])
    enrol.add_argument("--phone", required=True)
    enrol.add_argument("--email", required=True)
    enrol.add_argument("--address", required=True)
    enrol.add_argument("--language", default="zh-HK", choices=["en", "zh-HK", "zh-CN"])
    enrol.add_argument("--selfie", required=True, type=Path, help="JPEG or PNG")
    enrol.add_argument("--kiosk-id")
    enrol.add_argument("--kiosk-secret")
    enrol.add_argument("--again", choices=["replace", "upgrade"],
                       help="at a kiosk, an enrolled citizen proofed again: replace a lost phone (every device revoked, "
                            "a new activation code for the same account) or upgrade basic to plus")

    activate = commands.add_parser("activate", help="bind this device with the activation code")
    activate.add_argument("--account-id", required=True)
    activate.add_argument("--code", required=True)
    activate.add_argument("--device-name", default="phone")
    activate.add_argument("--no-pin", action="store_true",
                          help="keep the device key without a PIN (in the clear; logins then never claim a PIN)")

    commands.add_parser("pending", help="list prompts waiting for a decision")
    show = commands.add_parser("show", help="show one prompt")
    show.add_argument("approval_id")
    approve = commands.add_parser("approve", help="approve a prompt")
    approve.add_argument("approval_id")
    approve.add_argument("--keep", nargs="*", help="formfill: the optional fields to release (default: all offered)")
    deny = commands.add_parser("deny", help="deny a prompt")
    deny.add_argument("approval_id")
    opener = commands.add_parser("open", help="open a link (QR code, harbourid:// or https app link): show it, approve, print the URL for the browser")
    opener.add_argument("link")
    opener.add_argument("--deny", action="store_true", help="decline instead of approving")
    opener.add_argument("--keep", nargs="*", help="formfill: the optional fields to release (default: all offered)")
    close = commands.add_parser("close-account", help="close the account for good (devices, data, certificate, inbox: docs/privacy.md)")
    close.add_argument("--yes", action="store_true", required=True, help="confirm: a closed account never comes back")
    commands.add_parser("devices", help="list this account's devices")
    commands.add_parser("export", help="download everything the platform holds about you: each service's signed part (JSON)")
    tracker = commands.add_parser("activity", help="every use of your identity: logins, releases, signatures, notifications, operator actions")
    tracker.add_argument("--after", type=int, default=0, help="the ledger seq to start after (a page's next_after)")
    tracker.add_argument("--limit", type=int, default=50)
    rename = commands.add_parser("rename", help="name a device of this account")
    rename.add_argument("device_id")
    rename.add_argument("name")
    pair_start = commands.add_parser("pair-start", help="on a new phone: ask to be added from a phone already bound; "
                                                        "prints the code to enter there")
    pair_start.add_argument("--device-name", default="phone")
    pair_start.add_argument("--no-pin", action="store_true", help="as activate's")
    commands.add_parser("set-pin", help="seal the device key under a new PIN or passphrase (a profile without one, or a "
                                        "PIN change); auth keeps the device's registration (docs/security.md)")
    pair_wait = commands.add_parser("pair-wait", help="on the new phone: wait until the pairing is approved (or not)")
    pair_wait.add_argument("--timeout", type=float, default=300.0, help="seconds")
    pair_approve = commands.add_parser("pair-approve", help="on a phone already bound: enter the new phone's code and "
                                                            "approve adding it (device-signed)")
    pair_approve.add_argument("code")
    pair_approve.add_argument("--deny", action="store_true", help="refuse instead of approving")
    revoke = commands.add_parser("revoke", help="revoke a device of this account")
    revoke.add_argument("device_id")
    inbox = commands.add_parser("inbox", help="list the messages agencies and the platform sent, newest first")
    inbox.add_argument("--unread", action="store_true")
    read = commands.add_parser("read", help="mark a message read (the agency learns it was read)")
    read.add_argument("item_id")
    change = commands.add_parser("change", help="change your phone, e-mail (a code is sent to the new one) or address")
    change.add_argument("field", choices=["phone", "email", "address"])
    change.add_argument("value")
    confirm = commands.add_parser("confirm-change", help="confirm a phone or e-mail change with the code it received")
    confirm.add_argument("change_id")
    confirm.add_argument("code")
    prefs = commands.add_parser("preferences", help="show the notification preferences, or change them with the options")
    prefs.add_argument("--language", choices=["en", "zh-HK", "zh-CN"])
    prefs.add_argument("--push", choices=["on", "off"], help="push to the phone besides the inbox")
    prefs.add_argument("--email", metavar="ADDRESS", help="receive agencies' messages by e-mail at this address ('off' to stop)")
    prefs.add_argument("--sms", metavar="E164", help="receive agencies' messages by SMS at this number ('off' to stop)")
    prefs.add_argument("--opt-out", action="append", default=[], metavar="CLIENT_ID", help="suppress an agency's messages")
    prefs.add_argument("--opt-in", action="append", default=[], metavar="CLIENT_ID", help="receive an agency's messages again")
    prefs.add_argument("--quiet-hours", metavar="HH:MM-HH:MM", help="Hong Kong time; 'off' to clear")
    return parser


async def preferences_command(app: CitizenApp, args: argparse.Namespace) -> dict:
    current = await app.preferences()
    changes: dict = {}
    if args.language:
        changes["language"] = args.language
    channels = set(current["channels"])
    if args.push:
        channels = channels | {"push"} if args.push == "on" else channels - {"push"}
    for channel, value, contact in (("email", args.email, "email"), ("sms", args.sms, "phone")):
        if value:
            channels = channels - {channel} if value == "off" else channels | {channel}
            if value != "off":
                changes[contact] = value
    if channels != set(current["channels"]):
        changes["channels"] = sorted(channels)
    if args.opt_out or args.opt_in:
        changes["opted_out"] = sorted((set(current["opted_out"]) | set(args.opt_out)) - set(args.opt_in))
    if args.quiet_hours:
        if args.quiet_hours == "off":
            changes["quiet_hours"] = None
        else:
            start, _, end = args.quiet_hours.partition("-")
            changes["quiet_hours"] = {"start": start, "end": end}
    return await app.set_preferences(**changes) if changes else current


def ask_pin() -> str:
    """The PIN that unlocks the device key: HARBOUR_APP_PIN, else asked on the terminal."""
    if os.environ.get(PIN_ENV):
        return os.environ[PIN_ENV]
    if not sys.stdin.isatty():
        raise ProfileError(f"the device key is protected by a PIN: set {PIN_ENV} or run in a terminal")
    return getpass.getpass("PIN: ")


def new_pin(env: str = PIN_ENV) -> str:
    """A new PIN or passphrase: from `env`, else asked twice on the terminal."""
    if os.environ.get(env):
        pin = os.environ[env]
    elif not sys.stdin.isatty():
        raise ProfileError(f"a new PIN is needed: set {env}, run in a terminal, or pass --no-pin")
    else:
        pin = getpass.getpass("New PIN or passphrase: ")
        if getpass.getpass("Again: ") != pin:
            raise ProfileError("the two PINs differ")
    check_new_pin(pin)
    return pin


def once(ask):
    """Ask at most once per command: one command is one approval (or one action) of the citizen."""
    asked: list[str] = []

    def pin() -> str:
        if not asked:
            asked.append(ask())
        return asked[0]
    return pin


async def run(args: argparse.Namespace) -> object:
    if args.command in ("enrol", "activate", "pair-start") and not args.profile.exists():
        profile = Profile(gateway_url=args.gateway)
    else:
        profile = Profile.load(args.profile)
    app = CitizenApp(profile, args.profile, pin=once(ask_pin))
    if args.command == "set-pin":
        profile.set_pin(new_pin(NEW_PIN_ENV), app.pin() if profile.pin_protected else None)
        profile.save(args.profile)
        return {"pin_protected": True, "device_id": profile.device_id}
    if args.command == "enrol":
        identity = {
            "id_number": args.id_number,
            "name_en": args.name_en,
            "date_of_birth": args.date_of_birth,
            "gender": args.gender,
            "phone": args.phone,
            "email": args.email,
            "address": args.address,
            "language": args.language,
        }
        if args.name_zh:
            identity["name_zh"] = args.name_zh
        kiosk = (args.kiosk_id, args.kiosk_secret) if args.kiosk_id else None
        if args.again and kiosk is None:
            raise SystemExit("--again needs the kiosk's --kiosk-id and --kiosk-secret")
        if args.again == "replace":
            return await app.replace_at_kiosk(identity, args.selfie.read_bytes(), kiosk=kiosk)
        if args.again == "upgrade":
            return await app.upgrade_at_kiosk(identity, args.selfie.read_bytes(), kiosk=kiosk)
        return await app.enrol(identity, args.selfie.read_bytes(), kiosk=kiosk)
    if args.command == "activate":
        return await app.activate(args.account_id, args.code, args.device_name, pin=None if args.no_pin else new_pin())
    if args.command == "pending":
        return await app.pending()
    if args.command == "show":
        return await app.show(args.approval_id)
    if args.command == "approve":
        return await app.approve(args.approval_id, selection=args.keep)
    if args.command == "deny":
        return await app.deny(args.approval_id)
    if args.command == "open":
        outcome = await app.open_link(args.link, approve=not args.deny, selection=args.keep)
        prompt = outcome["prompt"]
        shown = {k: prompt[k] for k in ("requester", "purpose", "details", "matching_code", "expires_at")}
        print(json.dumps({"request": shown, "decision": outcome["status"]}, ensure_ascii=False), file=sys.stderr)
        # What the phone hands back to the browser; alone on stdout so scripts can use it.
        return PlainText(outcome.get("redirect_to") or outcome["status"])
    if args.command == "close-account":
        return await app.close_account()
    if args.command == "devices":
        return await app.devices()
    if args.command == "export":
        return await app.export()
    if args.command == "activity":
        return await app.activity(after=args.after, limit=args.limit)
    if args.command == "rename":
        return await app.rename_device(args.device_id, args.name)
    if args.command == "pair-start":
        return await app.start_pairing(args.device_name, pin=None if args.no_pin else new_pin())
    if args.command == "pair-wait":
        return await app.finish_pairing(args.timeout)
    if args.command == "pair-approve":
        return await app.approve_pairing(args.code, approve=not args.deny)
    if args.command == "revoke":
        await app.revoke(args.device_id)
        return {"revoked": args.device_id}
    if args.command == "inbox":
        return await app.inbox(unread_only=args.unread)
    if args.command == "read":
        return await app.read(args.item_id)
    if args.command == "change":
        return await app.change_profile(args.field, args.value)
    if args.command == "confirm-change":
        return await app.confirm_profile_change(args.change_id, args.code)
    if args.command == "preferences":
        return await preferences_command(app, args)
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(run(args))
    except AppError as exc:
        print(json.dumps({"status": exc.status, **exc.problem}, ensure_ascii=False), file=sys.stderr)
        return 1
    except (ProfileError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    print(result if isinstance(result, PlainText) else json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
