"""Reading a stack process's Prometheus metrics in end-to-end tests."""

from __future__ import annotations

import requests


def held_requests(platform, service: str) -> float | None:
    """The requests `service` holds now until what they ask after moves (its harbour_requests_held; libs/held_requests.py)."""
    text = requests.get(platform.stack.config.metrics_url(service), timeout=10).text
    prefix = f'harbour_requests_held{{service="{service}"}}'
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)), None)
