"""The broker and database tests run against (`make up`'s when it runs, or a private pair on free ports), and
stopping an in-process service on them."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from libs.devstack import DevStack, StackConfig, load_running_stack
from libs.devstack.config import REPO_ROOT, dev_dir_from_env
from libs.service.settings import ServiceSettings


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    mongo_uri: str
    dev_dir: Path

    def settings(self, service: str, **overrides) -> ServiceSettings:
        """Settings for an in-process service app on a free port with a database of its own."""
        values = dict(
            service=service,
            port=0,
            mongo_uri=self.mongo_uri,
            database=f"test_{service}_{uuid.uuid4().hex[:8]}",
            kafka_bootstrap=self.kafka_bootstrap,
        )
        values.update(overrides)
        return ServiceSettings(**values)


@contextmanager
def private_infra(name: str) -> Iterator[Infra]:
    """A broker and a database of their own on free ports under `.dev/<name>-<pid>/`, stopped and removed after."""
    private_dir = REPO_ROOT / ".dev" / f"{name}-{os.getpid()}"
    config = StackConfig.free_ports(private_dir)
    # A process the tests kill mid-transaction (the notify dispatcher) holds its locks until the database drops
    # the idle transaction: 10 s here instead of mongod's 60.
    config.mongo_transaction_lifetime_s = 10.0
    stack = DevStack(config)
    try:
        stack.up_infra()
        yield Infra(stack.config.kafka_bootstrap, stack.config.mongo_uri, private_dir)
    finally:
        stack.down()
        shutil.rmtree(private_dir, ignore_errors=True)


@contextmanager
def shared_or_private_infra() -> Iterator[Infra]:
    """The running `make up` stack's broker and database when there is one, else a private pair."""
    running = load_running_stack(dev_dir_from_env())
    if running is not None:
        yield Infra(running.config.kafka_bootstrap, running.config.mongo_uri, running.dev_dir)
        return
    with private_infra("test") as infra:
        yield infra



async def serving(app, shutdown_timeout_s: float, **server_options) -> TestClient:
    """A TestClient on `app`, its server stopping as the service's own does: requests still running when it stops
    get `shutdown_timeout_s` (the service's HARBOUR_*_SHUTDOWN_TIMEOUT_S, 10 s) to finish, then are cancelled —
    aiohttp's TestServer otherwise waits 60 s for them, as long as stop_within allows the whole stop."""
    server = TestServer(app, **server_options)
    await server.start_server(shutdown_timeout=shutdown_timeout_s)
    client = TestClient(server)
    await client.start_server()
    return client

def awaiting(task: asyncio.Task) -> str:
    """Where a suspended task waits, innermost last: its coroutine and each coroutine or generator it awaits."""
    frames, awaited = [], task.get_coro()
    while awaited is not None and len(frames) < 40:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        following = (getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
                     or getattr(awaited, "ag_await", None))
        # A cleanup context's exit awaits its async generator through an `asend` object, which shows nothing:
        # follow the generator itself (the step of the service's cleanup the stop hangs in).
        if frame is not None and frame.f_code.co_name == "__aexit__" and hasattr(frame.f_locals.get("self"), "gen"):
            following = frame.f_locals["self"].gen
        awaited = following
    return " > ".join(frames)


async def stop_within(client, seconds: float = 60.0) -> None:
    """Close an in-process service's TestClient; one that has not stopped after `seconds` fails the test with what
    each of its tasks was waiting for (rather than hanging the run until the test timeout)."""
    try:
        await asyncio.wait_for(asyncio.shield(closing := asyncio.ensure_future(client.close())), seconds)
    except TimeoutError:
        # Each task's await chain (a suspended task's get_stack shows only its outermost frame); the close itself
        # last — the cleanup step it hangs in — since a CI log may keep only its tail.
        waiting = [f"{task.get_name()}: {awaiting(task)}" for task in asyncio.all_tasks()
                   if task not in (asyncio.current_task(), closing) and not task.done()]
        waiting.append(f"the close: {awaiting(closing)}")
        closing.cancel()
        raise AssertionError(f"the service did not stop within {seconds} s; its tasks:\n" + "\n".join(waiting)) from None
