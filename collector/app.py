"""The collector process: OTLP/HTTP and OTLP/gRPC on one event loop, one span producer."""

import asyncio
import logging

import grpc
import uvicorn

from trace_insights.collector.ingest import Ingestor
from trace_insights.collector.otlp_grpc import start_server
from trace_insights.collector.otlp_http import create_app
from trace_insights.collector.producer import SpanProducer
from trace_insights.core.settings import Settings
from trace_insights.serving import http_server, serve_until, stop_on_signals

log = logging.getLogger(__name__)


class Collector:
    """Both OTLP listeners over one producer; ``start`` then ``stop`` (flushes the producer)."""

    def __init__(self, settings: Settings, producer: SpanProducer) -> None:
        self.settings = settings
        self.producer = producer
        self.ingestor = Ingestor.over(settings, producer)
        self.http: uvicorn.Server = http_server(
            create_app(self.ingestor), settings.host, settings.otlp_http_port
        )
        self._grpc: grpc.aio.Server | None = None

    async def start_grpc(self) -> None:
        self._grpc, port = await start_server(
            self.ingestor, self.settings.host, self.settings.otlp_grpc_port
        )
        log.info(
            "collector listening",
            extra={"fields": {"otlp_http": self.settings.otlp_http_port, "otlp_grpc": port}},
        )

    async def stop(self) -> None:
        """After the HTTP server ended: stop gRPC, then flush what Kafka has not acknowledged."""
        if self._grpc is not None:
            await self._grpc.stop(grace=5)
        await asyncio.to_thread(self.producer.close)


async def serve(settings: Settings, producer: SpanProducer) -> None:
    """Run until SIGINT/SIGTERM, then stop receiving and flush (closing ``producer``)."""
    collector = Collector(settings, producer)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await collector.start_grpc()
    try:
        await serve_until(stop, collector.http)
    finally:
        await collector.stop()


def run(settings: Settings, producer: SpanProducer) -> None:
    asyncio.run(serve(settings, producer))
