"""Coalesce the spans of concurrent export requests into one Kafka message per partition.

A request's spans usually spread over every partition; sent alone, each request would cost one
small message per partition. Requests arriving within ``linger`` share messages instead, which
is where most of the collector's per-span cost goes (see bench/collector.py).

Contract: ``submit`` returns once every span it was given is acknowledged by Kafka, and raises
``Unavailable`` if any message holding them was not.
"""

import asyncio
from dataclasses import dataclass, field

from trace_insights.collector.producer import SpanProducer
from trace_insights.collector.regroup import Run, assemble


@dataclass
class _Pending:
    """Runs waiting for the next flush of one partition."""

    runs: list[Run] = field(default_factory=list)
    size: int = 0


class PartitionBatcher:
    def __init__(self, producer: SpanProducer, max_message_bytes: int, linger_s: float) -> None:
        self._producer = producer
        self._limit = max_message_bytes
        self._linger_s = linger_s
        self._pending: dict[int, _Pending] = {}
        self._flushed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, routed: dict[int, list[Run]]) -> None:
        waits: set[asyncio.Future[None]] = set()
        for partition, runs in routed.items():
            size = sum(run.size for run in runs)
            pending = self._pending.get(partition)
            if pending is not None and pending.size + size > self._limit:
                self._flush()
                pending = None
            if pending is None:
                pending = self._pending[partition] = _Pending()
            pending.runs.extend(runs)
            pending.size += size
            waits.add(self._current_flush())
        if any(p.size >= self._limit for p in self._pending.values()):
            self._flush()
        elif self._timer is None and self._pending:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._flush)
        # shielded: one caller giving up must not cancel the flush others wait for
        await asyncio.gather(*(asyncio.shield(wait) for wait in waits))

    def _current_flush(self) -> "asyncio.Future[None]":
        if self._flushed is None:
            self._flushed = asyncio.get_running_loop().create_future()
        return self._flushed

    def _flush(self) -> None:
        """Send everything pending as one publish; its outcome settles every waiter."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        flushed, self._flushed = self._flushed, None
        if flushed is None or not pending:
            return
        batches = [
            batch
            for partition, entry in pending.items()
            for batch in assemble(partition, entry.runs, self._limit)
        ]
        task = asyncio.ensure_future(self._producer.publish(batches))
        task.add_done_callback(lambda done: _settle(flushed, done))


def _settle(waiter: "asyncio.Future[None]", task: "asyncio.Future[None]") -> None:
    if waiter.done():
        return
    if task.cancelled():
        waiter.cancel()
    elif task.exception() is not None:
        waiter.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        waiter.set_result(None)
