"""Installs nothing by hand: runs the local broker, database and services for `make up` and the tests.

config.py: where the stack lives and listens; stack.py: starting, waiting for and stopping its processes.
"""

from .config import SERVICES, StackConfig
from .stack import DevStack, load_running_stack

__all__ = ["SERVICES", "DevStack", "StackConfig", "load_running_stack"]
