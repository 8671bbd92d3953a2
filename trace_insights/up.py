"""``trace-insights up``: collector, aggregator and API in one process.

With no server URLs configured it needs nothing running: an in-process bus stands in for
Kafka, an in-memory store for Redis, SQLite (under the data directory) for PostgreSQL. The
aggregates are rebuilt from the database at start, so a restart keeps everything the
aggregator had applied; the bus continues after the offsets the database holds. Each URL
that is set (``TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS``, ``…_REDIS_URL``, ``…_DATABASE_URL``)
replaces its embedded stand-in.

Durability in the embedded mode: an export is acknowledged once it is on the in-process bus;
a graceful stop drains the bus into the database first, a crash loses what was not yet
applied (seconds at most). Configure Kafka for acknowledged-means-durable.
"""

import asyncio
import contextlib
import logging
import threading
import time

from trace_insights.aggregator.loop import Aggregator
from trace_insights.api.alerts.worker import AlertWorker
from trace_insights.api.app import create_app
from trace_insights.api.context import Context
from trace_insights.bus import LocalBus
from trace_insights.collector.app import Collector
from trace_insights.collector.otlp_http import create_app as create_otlp_app
from trace_insights.core.settings import Settings
from trace_insights.generate import Traffic, judge, send
from trace_insights.serving import http_server, serve_until, stop_on_signals
from trace_insights.wiring import (
    open_bus,
    open_engine,
    open_producer,
    open_publisher,
    open_source,
    open_store,
    policy,
)

log = logging.getLogger(__name__)

_DRAIN_S = 30.0
DEMO_EXPERIMENT = "0"


def run(settings: Settings, demo: bool = False) -> None:
    asyncio.run(_serve(settings, demo))


async def _serve(settings: Settings, demo: bool) -> None:
    # each step's undoing is pushed as it is taken: a failing step still undoes the others,
    # in reverse order
    async with contextlib.AsyncExitStack() as opened:
        engine = open_engine(settings, migrate_now=True)
        opened.callback(engine.dispose)
        store = open_store(settings, embedded=True)
        opened.callback(store.close)
        bus = open_bus(settings, engine, store)
        publisher = open_publisher(settings, bus)
        opened.callback(publisher.close)
        source = open_source(settings, bus)
        opened.callback(source.close)
        aggregator = Aggregator(
            source, engine, store, policy(settings), int(settings.trace_idle_timeout_s * 1000)
        )
        halt = threading.Event()
        worker = threading.Thread(
            target=aggregator.run,
            args=(halt,),
            kwargs={"poll_timeout_ms": 100},
            name="aggregator",
            daemon=True,
        )
        worker.start()

        async def stop_aggregating() -> None:
            halt.set()
            await asyncio.to_thread(worker.join, 30)

        opened.push_async_callback(stop_aggregating)
        if bus is not None:  # what was acknowledged is applied before the aggregator stops
            opened.push_async_callback(asyncio.to_thread, _drain, bus)

        def aggregating() -> list[str]:
            """The aggregator thread's readiness, reported by the API's /ready."""
            if not worker.is_alive() and not halt.is_set():
                return ["the aggregator thread has stopped"]
            return aggregator.liveness.problems()

        collector = Collector(settings, open_producer(settings, bus))
        opened.push_async_callback(collector.stop)
        context = Context(
            settings=settings,
            store=store,
            engine=engine,
            publisher=publisher,
            checks=[aggregating],
            spans=create_otlp_app(collector.ingestor),  # MLflow's client logs spans to the API
        )
        api = http_server(create_app(context), settings.host, settings.api_port)
        alerts = AlertWorker(context)
        alerts.start()
        opened.push_async_callback(asyncio.to_thread, alerts.stop)
        signalled, shutdown = asyncio.Event(), asyncio.Event()
        stop_on_signals(signalled)
        await collector.start_grpc()
        demo_stop = threading.Event()
        opened.callback(demo_stop.set)
        demo_thread = threading.Thread(target=_demo, args=(settings, demo_stop), daemon=True)
        if demo:
            demo_thread.start()

        async def stop_demo_first() -> None:
            """The demo's last traces still reach the collector before it stops."""
            await signalled.wait()
            demo_stop.set()
            if demo:
                await asyncio.to_thread(demo_thread.join, 15)
            shutdown.set()

        stopper = asyncio.ensure_future(stop_demo_first())
        opened.callback(stopper.cancel)
        print(
            f"trace-insights up: OTLP http://{settings.host}:{settings.otlp_http_port} "
            f"(gRPC {settings.host}:{settings.otlp_grpc_port}), API "
            f"http://{settings.host}:{settings.api_port}/docs — Ctrl-C stops",
            flush=True,
        )
        await serve_until(shutdown, collector.http, api, closing=context.closing)


def _drain(bus: LocalBus) -> None:
    deadline = time.monotonic() + _DRAIN_S
    while not bus.drained() and time.monotonic() < deadline:
        time.sleep(0.05)


def _demo(settings: Settings, halt: threading.Event) -> None:
    """A trickle of realistic agent traffic through the collector, and an LLM judge's feedback
    on some of the previous round's traces through the API, until stopped."""
    endpoint = f"http://{settings.host}:{settings.otlp_http_port}"
    api_url = f"http://{settings.host}:{settings.api_port}"
    traffic = Traffic(seed=None)
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    previous: list[tuple[str, bool]] = []
    while not halt.is_set():
        try:
            sent = send(
                traffic,
                endpoint=endpoint,
                protocol="http",
                traces=10,
                rate=5.0,
                experiment_id=DEMO_EXPERIMENT,
                token=token,
            )
            judge(api_url, previous, traffic.random, token)  # ingested by now
            previous = sent.roots
        except Exception as exc:  # the demo must never take the pipeline down
            log.warning("demo traffic failed", extra={"fields": {"error": str(exc)}})
            halt.wait(1.0)
