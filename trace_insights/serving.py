"""HTTP servers that stop together: the process owns SIGINT/SIGTERM, not each server.

uvicorn's own signal capture re-raises the signal after its shutdown, which ends the process
before the caller's cleanup (flushing Kafka, stopping gRPC) and cannot serve two servers in one
process; here a signal sets one stop event that every server and worker honours.
"""

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from trace_insights import runtime


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Any, host: str, port: int) -> uvicorn.Server:
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
    )


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


async def serve_until(
    stop: asyncio.Event, *servers: uvicorn.Server, closing: threading.Event | None = None
) -> None:
    """Run the servers until ``stop`` is set (or one of them ends), then shut all down;
    ``closing`` is set first, so long-lived responses (live feeds) end instead of holding
    the graceful shutdown open."""
    runtime.settle()  # what start-up built stays out of every later collection
    tasks = [asyncio.ensure_future(server.serve()) for server in servers]
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    if closing is not None:
        closing.set()
    for server in servers:
        server.should_exit = True
    stopper.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
