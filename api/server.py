"""``trace-insights api``: the API alone, over Redis, PostgreSQL and Kafka (for assessments)."""

import asyncio
import logging

from trace_insights.api.alerts.worker import AlertWorker
from trace_insights.api.app import create_app
from trace_insights.api.context import Context
from trace_insights.serving import http_server, serve_until, stop_on_signals

log = logging.getLogger(__name__)


async def serve(context: Context) -> None:
    """Serve until SIGINT/SIGTERM; the caller opened (and closes) the context's backends."""
    settings = context.settings
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


def run(context: Context) -> None:
    asyncio.run(serve(context))
