"""Webhook deliveries from the outbox: signed, retried with exponential backoff, logged.

A delivery is claimed by compare-and-set on its attempt count before it is sent, so replicas
never send one twice at once; a crash after sending and before recording replays it (at least
once) — receivers deduplicate on ``X-Trace-Insights-Delivery``.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
import sqlalchemy as sa

from trace_insights.truth.models import AlertDelivery, AlertRule

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
FIRST_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000
TIMEOUT_S = 5.0


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_due(engine: sa.Engine, client: httpx.Client, now_ms: int | None = None) -> int:
    """Send the deliveries that are due; returns how many were attempted."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with engine.connect() as connection:
        due = list(
            connection.execute(
                sa.select(AlertDelivery, AlertRule.secret)
                .join(AlertRule, AlertRule.rule_id == AlertDelivery.rule_id, isouter=True)
                .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_ms <= now)
                .order_by(AlertDelivery.next_attempt_ms)
                .limit(50)
            )
        )
    attempted = 0
    for delivery in due:
        secret = delivery.secret
        if secret is None:  # the rule was deleted
            _finish(engine, delivery.delivery_id, "failed", None, "the rule was deleted", now)
            continue
        backoff = min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2**delivery.attempts)
        with engine.begin() as connection:
            claimed = connection.execute(
                sa.update(AlertDelivery)
                .where(
                    AlertDelivery.delivery_id == delivery.delivery_id,
                    AlertDelivery.attempts == delivery.attempts,
                    AlertDelivery.status == "pending",
                )
                .values(attempts=delivery.attempts + 1, next_attempt_ms=now + backoff)
            ).rowcount
        if claimed != 1:
            continue
        attempted += 1
        _send(engine, client, delivery, secret, now)
    return attempted


def _send(engine: sa.Engine, client: httpx.Client, delivery: Any, secret: str, now: int) -> None:
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "x-signature": signature(secret, body),
        "x-trace-insights-delivery": delivery.delivery_id,
        "x-trace-insights-event": delivery.event,
        "user-agent": "trace-insights-alerts/0.1",
    }
    try:
        response = client.post(delivery.target, content=body, headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        _retry_or_fail(engine, delivery, None, f"{exc.__class__.__name__}: {exc}", now)
        return
    if 200 <= response.status_code < 300:
        _finish(engine, delivery.delivery_id, "delivered", response.status_code, None, now)
    else:
        _retry_or_fail(engine, delivery, response.status_code, f"HTTP {response.status_code}", now)


def _retry_or_fail(
    engine: sa.Engine, delivery: Any, status: int | None, error: str, now: int
) -> None:
    if delivery.attempts + 1 >= MAX_ATTEMPTS:
        _finish(engine, delivery.delivery_id, "failed", status, error, now)
        return
    log.warning(
        "webhook failed, will retry",
        extra={"fields": {"delivery": delivery.delivery_id, "error": error}},
    )
    with engine.begin() as connection:
        connection.execute(
            sa.update(AlertDelivery)
            .where(AlertDelivery.delivery_id == delivery.delivery_id)
            .values(response_status=status, last_error=error)
        )


def _finish(
    engine: sa.Engine, delivery_id: str, status: str, code: int | None, error: str | None, now: int
) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.update(AlertDelivery)
            .where(AlertDelivery.delivery_id == delivery_id)
            .values(
                status=status,
                response_status=code,
                last_error=error,
                delivered_ms=now if status == "delivered" else None,
            )
        )
