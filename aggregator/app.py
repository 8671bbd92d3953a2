"""The aggregator process: one member of the consumer group, until SIGINT/SIGTERM."""

import logging
import signal
import threading

import sqlalchemy as sa

from trace_insights import runtime
from trace_insights.aggregator.deltas import Policy
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.metrics import serve
from trace_insights.aggregator.source import Source
from trace_insights.core.settings import Settings
from trace_insights.stores.base import AggregateStore

log = logging.getLogger(__name__)


def run(
    settings: Settings, source: Source, engine: sa.Engine, store: AggregateStore, policy: Policy
) -> None:
    """Aggregate until SIGINT/SIGTERM; the caller opened (and closes) the backends."""
    aggregator = Aggregator(
        source, engine, store, policy, int(settings.trace_idle_timeout_s * 1000)
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = serve(aggregator.liveness, settings.host, settings.aggregator_port)
    runtime.settle()
    log.info(
        "aggregator running",
        extra={"fields": {"group": settings.consumer_group, "port": server.server_address[1]}},
    )
    try:
        aggregator.run(stop)
    finally:
        server.shutdown()
