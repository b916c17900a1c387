"""What an operator does: auth's admin command, and calls with the operator's token."""

from __future__ import annotations

import json
import subprocess
import sys


OPERATOR = "test.operator"


def admin(platform, *args: str, operator: str | None = OPERATOR) -> subprocess.CompletedProcess:
    """auth's operator command, run with the services' environment and an operator's name (HARBOUR_OPERATOR) in it."""
    env = platform.env() | ({"HARBOUR_OPERATOR": operator} if operator else {})
    return subprocess.run(
        [sys.executable, "-m", "services.auth.admin", *args], env=env, capture_output=True, text=True, timeout=60
    )


def create_kiosk(platform) -> tuple[str, str]:
    """A kiosk client with the enrol scope: (client_id, client_secret)."""
    result = admin(platform, "create-client", "--kind", "kiosk", "--name", "Kiosk Central", "--scope", "enrol",
                   "--reason", "a kiosk for the tests")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    return created["client_id"], created["client_secret"]


def operator(platform) -> dict[str, str]:
    """The Authorization header of the operator's admin token."""
    return {"Authorization": f"Bearer {platform.env()['HARBOUR_ADMIN_TOKEN']}"}
