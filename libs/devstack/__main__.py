"""`python -m libs.devstack up|down|status|infra|backup DIR|restore DIR`: the dev stack behind `make up` / `make down`,
and its backup and restore (`make backup`, `make restore DIR=...`; libs/devstack/backup.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pymongo.errors import PyMongoError

from . import backup
from .config import SERVICES, WORKERS, StackConfig
from .stack import DevStack, load_running_stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "infra"):
        commands.add_parser(name)
    saving = commands.add_parser("backup", help="every service's database, the HSM token and the keys, to a new folder")
    saving.add_argument("dir", type=Path)
    saving.add_argument("--keys-dir", type=Path, help="write the keys (secrets.json) here, apart from the data")
    restoring = commands.add_parser("restore", help="replace the stack's databases, HSM token and keys with a backup")
    restoring.add_argument("dir", type=Path)
    restoring.add_argument("--keys-dir", type=Path, help="where the backup's keys were written, if apart from it")
    restoring.add_argument("--replay-window-s", type=float, default=backup.DEFAULT_REPLAY_WINDOW_S,
                           help="publish again the outbox events sent this long before the backup (0: none)")
    args = parser.parse_args()
    config = StackConfig.from_env()
    stack = DevStack(config)

    if args.command in ("backup", "restore"):
        # The stack running under HARBOUR_DEV_DIR (its own ports, from stack.json), else the configured one.
        stack = load_running_stack(config.dev_dir) or stack
        try:
            if args.command == "backup":
                manifest = backup.backup(stack, args.dir, keys_dir=args.keys_dir)
                counts = {entry["name"]: sum(c["documents"] for c in entry["collections"].values())
                          for entry in manifest["databases"].values()}
                print(json.dumps({"backup": str(args.dir.resolve()), "created_at": manifest["created_at"],
                                  "documents": counts, "hsm": manifest["hsm"], "keys": manifest["secrets"]["file"]}, indent=2))
            else:
                summary = backup.restore(stack, args.dir, keys_dir=args.keys_dir, replay_window_s=args.replay_window_s)
                print(json.dumps({"restored": str(args.dir.resolve()), **summary}, indent=2))
                print("Start the services with: make up", file=sys.stderr)
        except (RuntimeError, TimeoutError, PyMongoError) as exc:  # BackupError says why; the others, what broke
            print(f"{args.command} failed: {exc}", file=sys.stderr)
            return 1
        return 0

    if args.command == "up":
        try:
            elapsed = stack.up()
        except (RuntimeError, TimeoutError) as exc:
            print(f"make up failed: {exc}\nlogs: {stack.log_dir}", file=sys.stderr)
            return 1
        print(f"Harbour ID is up in {elapsed:.1f}s (logs in {stack.log_dir})")
        print(f"  gateway (issuer)   {config.service_url('gateway')}")
        # The citizen's web app answers at its one origin: WebAuthn refuses an IP address, hence localhost.
        print(f"  citizen web app    {config.service_url('gateway').replace('127.0.0.1', 'localhost')}/app/")
        for name in SERVICES[:-1]:
            print(f"  {name:<18} {config.service_url(name)}")
        print("  metrics (internal listeners, for Prometheus):")
        for name in (*SERVICES, *WORKERS):
            print(f"    {name:<16} {config.metrics_url(name)}")
        print(f"  kafka-protocol     {config.kafka_bootstrap}")
        print(f"  mongodb-protocol   {config.mongo_uri}")
        print(f"  smtp (local mail)  127.0.0.1:{config.smtp_port}, received mail in {config.maildir}/new; SMS in {config.sms_dir}")
        print("Stop everything with: make down")
    elif args.command == "infra":
        stack.up_infra()
        print(f"broker {config.kafka_bootstrap}, database {config.mongo_uri}")
    elif args.command == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        for name, pid in stack.status().items():
            where = f"  {config.metrics_url(name)}" if name in config.metrics_ports else ""
            print(f"{name:<18} {('running, pid ' + str(pid)) if pid else 'stopped':<22}{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
