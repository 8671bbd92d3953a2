"""``trace-insights api``: the API alone, over Redis, PostgreSQL and Kafka (for assessments)."""

import asyncio
import logging

from trace_insights.api.alerts.worker import AlertWorker
from trace_insights.api.app import create_app
from trace_insights.api.context import Context
from trace_insights.api.publisher import KafkaPublisher
from trace_insights.core.settings import Settings
from trace_insights.serving import http_server, serve_until, stop_on_signals
from trace_insights.stores.redis import RedisStore
from trace_insights.truth.database import create_engine, migrate

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    engine = create_engine(settings.database())
    if settings.migrate_on_start:
        migrate(engine)
    context = Context(
        settings=settings,
        store=RedisStore(settings.require_redis(), cluster=settings.redis_cluster),
        engine=engine,
        publisher=KafkaPublisher(settings),
    )
    stop = asyncio.Event()
    stop_on_signals(stop)
    alerts = AlertWorker(context)
    alerts.start()
    log.info("api listening", extra={"fields": {"port": settings.api_port}})
    try:
        server = http_server(create_app(context), settings.host, settings.api_port)
        await serve_until(stop, server, closing=context.closing)
    finally:
        await asyncio.to_thread(alerts.stop)
        context.publisher.close()
        context.store.close()
        engine.dispose()


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
