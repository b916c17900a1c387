"""What the operator commands (`python -m services.<service>.admin ...`) share: who acts, why, and a context.

Every operator action is audited (docs/events.md, the audit inventory) in the transaction of its change, with
`actor` = `operator:<name>` and the operator's `reason`. The command refuses to run without both: `--reason`
always on the command line, the name from `--operator` or, in an operator's shell or pod where it is set once,
`HARBOUR_OPERATOR`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from .context import ServiceContext

OPERATOR_ENV = "HARBOUR_OPERATOR"


def add_operator_arguments(parser: argparse.ArgumentParser) -> None:
    """`--operator` (default `$HARBOUR_OPERATOR`) and `--reason`, both required: argparse refuses without them."""
    default = os.environ.get(OPERATOR_ENV) or None
    parser.add_argument("--operator", default=default, required=default is None,
                        help=f"who acts (the audit record's actor: operator:<name>; default ${OPERATOR_ENV})")
    parser.add_argument("--reason", required=True, help="why (kept in the audit record)")


def operator_actor(args: argparse.Namespace) -> str:
    """The audit record's actor of the command's operator."""
    name = (args.operator or "").strip()
    reason = (args.reason or "").strip()
    if not name or not reason:
        raise ValueError("an operator action needs --operator (or HARBOUR_OPERATOR) and a --reason")
    return f"operator:{name}"


class NoRelay:
    """The running service's relay publishes what a command writes to the outbox: nothing to wake in this process."""

    def notify(self) -> None:
        pass


def operator_context(source: str, settings: Any, mongo: Any, db: Any) -> ServiceContext:
    """A service's database and outbox for its operator commands, events under the service's own `source`."""
    cls = dataclass(frozen=True)(type("Operator", (ServiceContext,), {"source": source, "__annotations__": {}}))
    return cls(settings=settings, mongo=mongo, db=db, relay=NoRelay())
