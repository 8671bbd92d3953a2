"""``/insights/alerts``: create, list, read, change and delete rules; read their deliveries."""

import secrets
import time
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.alerts.schemas import (
    CreatedRule,
    DeliveriesOut,
    DeliveryOut,
    RuleChange,
    RuleIn,
    RuleOut,
    RulesOut,
)
from trace_insights.api.alerts.targets import check_url
from trace_insights.api.context import Context
from trace_insights.api.errors import invalid, not_found
from trace_insights.api.mlflow.schemas import Deleted
from trace_insights.core import dimensions
from trace_insights.truth.models import AlertDelivery, AlertRule

router = APIRouter(prefix="/alerts")


@router.post("", response_model=CreatedRule)
def create(body: RuleIn, request: Request) -> CreatedRule:
    context: Context = request.app.state.context
    context.require_experiments(body.experiment_ids)
    _check(context, body.window_s, body.baseline, body)
    _check_targets(context, body.webhooks)
    now = int(time.time() * 1000)
    row = dict(
        rule_id=f"r-{secrets.token_hex(8)}",
        name=body.name,
        experiment_ids=body.experiment_ids,
        metric=body.metric,
        parameters=body.parameters.model_dump(exclude_none=True),
        window_s=body.window_s,
        comparator=body.comparator,
        threshold=body.threshold,
        min_traces=body.min_traces,
        baseline=body.baseline,
        webhooks=body.webhooks,
        secret=body.secret or secrets.token_hex(24),
        cooldown_s=body.cooldown_s,
        slack=body.slack,
        created_ms=now,
        state="ok",
        state_since_ms=now,
        last_value=None,
        last_evaluated_ms=None,
        last_notified_ms=None,
        version=0,
    )
    with context.engine.begin() as connection:
        connection.execute(sa.insert(AlertRule).values(**row))
    created = _out(_rule(context, str(row["rule_id"])))
    return CreatedRule(**created.model_dump(), secret=str(row["secret"]))


@router.get("", response_model=RulesOut)
def list_rules(request: Request) -> RulesOut:
    context: Context = request.app.state.context
    with context.engine.connect() as connection:
        rows = connection.execute(sa.select(AlertRule).order_by(AlertRule.created_ms))
        return RulesOut(rules=[_out(row) for row in rows])


@router.get("/{rule_id}", response_model=RuleOut)
def get(rule_id: str, request: Request) -> RuleOut:
    return _out(_rule(request.app.state.context, rule_id))


@router.patch("/{rule_id}", response_model=RuleOut)
def change(rule_id: str, body: RuleChange, request: Request) -> RuleOut:
    context: Context = request.app.state.context
    rule = _rule(context, rule_id)
    values = body.model_dump(exclude_none=True)
    _check(context, values.get("window_s", rule.window_s), rule.baseline, None)
    _check_targets(context, body.webhooks or [])
    if values:
        with context.engine.begin() as connection:
            connection.execute(
                sa.update(AlertRule)
                .where(AlertRule.rule_id == rule_id)
                .values(**values, version=AlertRule.version + 1)
            )
    return _out(_rule(context, rule_id))


@router.delete("/{rule_id}", response_model=Deleted)
def delete(rule_id: str, request: Request) -> Deleted:
    context: Context = request.app.state.context
    _rule(context, rule_id)
    with context.engine.begin() as connection:
        connection.execute(sa.delete(AlertRule).where(AlertRule.rule_id == rule_id))
    return Deleted()


@router.get("/{rule_id}/deliveries", response_model=DeliveriesOut)
def deliveries(rule_id: str, request: Request) -> DeliveriesOut:
    context: Context = request.app.state.context
    _rule(context, rule_id)
    with context.engine.connect() as connection:
        rows = connection.execute(
            sa.select(AlertDelivery)
            .where(AlertDelivery.rule_id == rule_id)
            .order_by(AlertDelivery.created_ms.desc())
            .limit(500)
        )
        return DeliveriesOut(
            deliveries=[
                DeliveryOut(
                    delivery_id=d.delivery_id,
                    event=d.event,
                    target=d.target,
                    status=d.status,
                    attempts=d.attempts,
                    created=d.created_ms,
                    delivered=d.delivered_ms,
                    response_status=d.response_status,
                    last_error=d.last_error,
                    payload=d.payload,
                )
                for d in rows
            ]
        )


def _check(context: Context, window_s: int, baseline: str | None, body: RuleIn | None) -> None:
    """The window must fit in what the aggregates keep; NPMI dimensions must make sense."""
    kept = (
        max(context.settings.retention_ms().values())
        if window_s >= 86_400
        else min(context.settings.retention_ms().values())
    )
    reach = window_s * 1000 + {"day": 86_400_000, "week": 7 * 86_400_000}.get(baseline or "", 0)
    if reach > kept:
        raise invalid(
            f"invalid value for 'window_s': {window_s} s (with its baseline) reaches past the "
            f"{kept // 3_600_000} h the aggregates keep at that resolution"
        )
    if body is not None and body.metric == "npmi":
        for field in ("dimension1", "dimension2"):
            dimension = getattr(body.parameters, field)
            dimensions.request(dimension.name, dimension.parameters, lambda _name: [])


def _check_targets(context: Context, urls: list[str]) -> None:
    for url in urls:
        try:
            check_url(url, context.settings.webhook_allow_private)
        except ValueError as exc:
            raise invalid(f"invalid value for 'webhooks': {exc}") from None


def _rule(context: Context, rule_id: str) -> Any:
    with context.engine.connect() as connection:
        row = connection.execute(sa.select(AlertRule).where(AlertRule.rule_id == rule_id)).first()
    if row is None:
        raise not_found(f"alert rule {rule_id!r} does not exist")
    return row


def _out(rule: Any) -> RuleOut:
    return RuleOut(
        rule_id=rule.rule_id,
        name=rule.name,
        experiment_ids=rule.experiment_ids,
        metric=rule.metric,
        parameters=rule.parameters,
        window_s=rule.window_s,
        comparator=rule.comparator,
        threshold=rule.threshold,
        min_traces=rule.min_traces,
        baseline=rule.baseline,
        webhooks=rule.webhooks,
        cooldown_s=rule.cooldown_s,
        slack=rule.slack,
        state=rule.state,
        state_since=rule.state_since_ms,
        last_value=rule.last_value,
        last_evaluated=rule.last_evaluated_ms,
        created=rule.created_ms,
    )
