"""Installs nothing by hand: runs the local broker, database and services for `make up` and the tests."""

from .stack import SERVICES, DevStack, StackConfig, load_running_stack

__all__ = ["SERVICES", "DevStack", "StackConfig", "load_running_stack"]
