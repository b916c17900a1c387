"""Reading a stack process's Prometheus metrics in end-to-end tests."""

from __future__ import annotations

import requests


def samples(platform, service: str, name: str) -> list[str]:
    """The lines of `service`'s /metrics for the metric `name` (each `name{labels} value`)."""
    text = requests.get(platform.stack.config.metrics_url(service), timeout=10).text
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def held_requests(platform, service: str) -> float | None:
    """The requests `service` holds now until what they ask after moves (its harbour_requests_held; libs/held_requests.py)."""
    prefix = f'harbour_requests_held{{service="{service}"}}'
    return next((float(line.split()[-1]) for line in samples(platform, service, "harbour_requests_held")
                 if line.startswith(prefix)), None)
