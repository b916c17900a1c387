"""`python -m libs.devstack up|down|status|infra`: the dev stack behind `make up` / `make down`."""

from __future__ import annotations

import argparse
import sys

from .config import SERVICES, WORKERS, StackConfig
from .stack import DevStack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m libs.devstack")
    parser.add_argument("command", choices=["up", "down", "status", "infra"])
    args = parser.parse_args()
    config = StackConfig.from_env()
    stack = DevStack(config)

    if args.command == "up":
        try:
            elapsed = stack.up()
        except (RuntimeError, TimeoutError) as exc:
            print(f"make up failed: {exc}\nlogs: {stack.log_dir}", file=sys.stderr)
            return 1
        print(f"Harbour ID is up in {elapsed:.1f}s (logs in {stack.log_dir})")
        print(f"  gateway (issuer)   {config.service_url('gateway')}")
        for name in SERVICES[:-1]:
            print(f"  {name:<18} {config.service_url(name)}")
        print("  metrics (internal listeners, for Prometheus):")
        for name in (*SERVICES, *WORKERS):
            print(f"    {name:<16} {config.metrics_url(name)}")
        print(f"  kafka-protocol     {config.kafka_bootstrap}")
        print(f"  mongodb-protocol   {config.mongo_uri}")
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
