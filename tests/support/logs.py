"""The services' real logging set-up in a test, whatever ran before it in the same process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from libs.service.logging import configure_logging


@contextmanager
def service_logs(service: str) -> Iterator[None]:
    """JSON lines as a service writes them (libs/service/logging.py), to whatever `sys.stdout` is when a line is
    logged — pytest's captured stdout in a test — and the root handler taken down after. A test that reads log lines
    sets this up itself: under pytest-xdist the tests that ran before it in its process differ from run to run."""
    configure_logging(service)
    try:
        yield
    finally:
        logging.getLogger().handlers.clear()
