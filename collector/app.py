"""The collector process: OTLP/HTTP and OTLP/gRPC on one event loop, one Kafka producer."""

import asyncio
import logging

import uvicorn

from collector.batcher import PartitionBatcher
from collector.ingest import Ingestor
from collector.otlp_grpc import start_server
from collector.otlp_http import create_app
from collector.producer import KafkaSpanProducer
from trace_insights.core.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then stop receiving and flush what Kafka has not acknowledged."""
    producer = KafkaSpanProducer(settings)
    producer.start()
    batcher = PartitionBatcher(
        producer, settings.max_message_bytes, settings.batch_linger_ms / 1000
    )
    ingestor = Ingestor(settings, producer, batcher)
    grpc_server, grpc_port = await start_server(ingestor, settings.host, settings.otlp_grpc_port)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(ingestor),
            host=settings.host,
            port=settings.otlp_http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
        )
    )
    log.info(
        "collector listening",
        extra={"fields": {"otlp_http": settings.otlp_http_port, "otlp_grpc": grpc_port}},
    )
    try:
        await http.serve()
    finally:
        await grpc_server.stop(grace=5)
        await asyncio.to_thread(producer.close)


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
