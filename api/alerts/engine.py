"""Evaluating a rule: its metric over the window ending now, a state change by compare-and-set,
and — in the same transaction — the webhook deliveries that announce it (an outbox). Any number
of evaluators may run (one per API replica): a transition is written, and notified, once."""

import json
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from trace_insights.api.aggregates import combined, total
from trace_insights.api.context import Context
from trace_insights.api.figures import tag_costs
from trace_insights.api.occurrences import Counts
from trace_insights.api.window import resolve as window_of
from trace_insights.core import dimensions, keys, money
from trace_insights.core.assessments import is_failure
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.core.npmi import npmi
from trace_insights.truth.models import AlertDelivery, AlertRule

_UTC = ZoneInfo("UTC")
BASELINE_MS = {"day": 86_400_000, "week": 7 * 86_400_000}
QUANTILES = {"latency_p50": 0.5, "latency_p90": 0.9, "latency_p99": 0.99}
ENDPOINTS = {  # where a notification's link points
    "error_rate": "traffic-cost/errors",
    "trace_count": "traffic-cost/volume",
    "token_count": "traffic-cost/tokens",
    "tool_error_rate": "tools/metrics",
    "assessment_failure_rate": "assessments/metrics",
    "npmi": "dimensions/calculate-npmi",
    "cost": "traffic-cost/cost",
}


@dataclass(frozen=True)
class Measurement:
    value: float | None  # None: undefined (no data)
    traces: int
    subject: str | None = None  # what the value is of, where the rule names no one (a tag value)


def measure(context: Context, rule: Any, end_ms: int) -> Measurement:
    """The rule's metric over [end - window, end); for a change rule, the absolute change
    from the same window ``baseline`` earlier."""
    now = _measure(context, rule, end_ms)
    if rule.baseline is None or now.value is None:
        return now
    before = _measure(context, rule, end_ms - BASELINE_MS[rule.baseline])
    if before.value is None:
        return Measurement(None, now.traces)
    return Measurement(abs(now.value - before.value), now.traces)


def _measure(context: Context, rule: Any, end_ms: int) -> Measurement:
    finest = Resolution.HOUR if rule.metric == "npmi" else Resolution.MINUTE
    window = window_of(
        end_ms - rule.window_s * 1000, end_ms, None, _UTC, context.settings.retention_ms(), finest
    )
    aggregates = context.over(list(rule.experiment_ids), window)
    bucket = total(aggregates.counters(keys.bucket))
    traces = int(bucket[fields.TRACES])
    metric, parameters = rule.metric, rule.parameters
    if metric == "trace_count":
        return Measurement(float(traces), traces)
    if metric == "error_rate":
        return Measurement(_percent(bucket[fields.status("ERROR")], traces), traces)
    if metric == "token_count":
        return Measurement(
            float(bucket[fields.INPUT_TOKENS] + bucket[fields.OUTPUT_TOKENS]), traces
        )
    if metric in QUANTILES:
        digest = combined(aggregates.digests(lambda e, r, s: keys.digests(e, r, s, "latency")))
        return Measurement(None if digest is None else digest.quantile(QUANTILES[metric]), traces)
    if metric == "tool_error_rate":
        tool = parameters["tool_name"]
        calls = bucket[fields.tool(tool, "calls")]
        return Measurement(_percent(bucket[fields.tool(tool, "errors")], calls), traces)
    if metric == "cost":
        return _cost(aggregates, bucket, parameters, traces)
    if metric == "assessment_failure_rate":
        name = parameters["assessment_name"]
        values = total(aggregates.counters(lambda e, r, s: keys.assessment_values(e, r, s, name)))
        assessed = sum(n for n in values.values() if n > 0)
        failed = sum(n for v, n in values.items() if n > 0 and is_failure(json.loads(v)))
        return Measurement(_percent(failed, assessed), traces)
    counts = Counts(aggregates)
    first = dimensions.request(
        parameters["dimension1"]["name"], parameters["dimension1"]["parameters"], counts.values_of
    )
    second = dimensions.request(
        parameters["dimension2"]["name"], parameters["dimension2"]["parameters"], counts.values_of
    )
    if first.terms is None or second.terms is None:
        return Measurement(None, traces)
    occurrences = counts.all_occurrences
    score = npmi(
        dimensions.joint(first.terms, second.terms, occurrences, counts.partners, counts.total),
        dimensions.count(first.terms, occurrences, counts.total),
        dimensions.count(second.terms, occurrences, counts.total),
        counts.total,
    )
    return Measurement(None if math.isnan(score.npmi) else score.npmi, traces)


def evaluate(context: Context, rule: Any, now_ms: int | None = None) -> str | None:
    """Measure ``rule`` (a row of alert_rules) and record the outcome; returns the transition
    it notified ("firing" or "resolved"), if any. Another evaluator that moved the rule first
    wins, and this one changes nothing."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    found = measure(context, rule, now)
    decided = found.value is not None and found.traces >= rule.min_traces
    breached = decided and _compare(found.value, rule.comparator, rule.threshold)  # type: ignore[arg-type]
    state = rule.state
    if decided:
        state = "firing" if breached else "ok"
    event = {("ok", "firing"): "firing", ("firing", "ok"): "resolved"}.get((rule.state, state))
    changes: dict[str, Any] = {
        "last_value": found.value,
        "last_evaluated_ms": now,
        "version": rule.version + 1,
    }
    notify = False
    if event is not None:
        changes.update(state=state, state_since_ms=now)
        notify = _should_notify(context, rule, event, now)
        if notify:
            changes["last_notified_ms"] = now
    with context.engine.begin() as connection:
        moved = connection.execute(
            sa.update(AlertRule)
            .where(AlertRule.rule_id == rule.rule_id, AlertRule.version == rule.version)
            .values(**changes)
        )
        if moved.rowcount != 1:
            return None
        if notify and event is not None:
            payload = _payload(rule, event, found, now)
            connection.execute(
                sa.insert(AlertDelivery),
                [
                    dict(
                        delivery_id=f"d-{secrets.token_hex(12)}",
                        rule_id=rule.rule_id,
                        event=event,
                        target=target,
                        payload=payload,
                        created_ms=now,
                        status="pending",
                        attempts=0,
                        next_attempt_ms=now,
                    )
                    for target in rule.webhooks
                ],
            )
    return event if notify else None


def _should_notify(context: Context, rule: Any, event: str, now: int) -> bool:
    """Cooldown: a firing right after a notification is not announced; a resolution is
    announced only if its firing was."""
    if event == "firing":
        last = rule.last_notified_ms
        return last is None or now - last >= rule.cooldown_s * 1000
    with context.engine.connect() as connection:
        previous = connection.scalar(
            sa.select(AlertDelivery.event)
            .where(AlertDelivery.rule_id == rule.rule_id)
            .order_by(AlertDelivery.created_ms.desc())
            .limit(1)
        )
    return previous == "firing"


def _payload(rule: Any, event: str, found: Measurement, now: int) -> dict[str, Any]:
    value = found.value
    query = {
        "experiment_ids": list(rule.experiment_ids),
        "start_time": now - rule.window_s * 1000,
        "end_time": now,
        "time_bucket": "minute",
    }
    endpoint = ENDPOINTS.get(rule.metric, "traffic-cost/latency")
    if rule.metric == "cost" and rule.parameters.get("tag_key"):
        endpoint = "tags/metrics"
    body = {
        "rule_id": rule.rule_id,
        "rule": rule.name,
        "state": event,
        "metric": rule.metric,
        "value": value,
        "subject": found.subject,
        "comparator": rule.comparator,
        "threshold": rule.threshold,
        "window_s": rule.window_s,
        "baseline": rule.baseline,
        "experiment_ids": list(rule.experiment_ids),
        "evaluated_at": now,
        "link": {
            "method": "POST",
            "path": f"/api/3.0/mlflow/traces/insights/{endpoint}",
            "body": {**query, **_link_parameters(rule)},
        },
    }
    if not rule.slack:
        return body
    shown = "n/a" if value is None else f"{value:.4g}"
    if found.subject is not None:
        shown += f" ({found.subject})"
    icon = ":rotating_light:" if event == "firing" else ":white_check_mark:"
    text = (
        f"{icon} *{rule.name}* is {event}: {rule.metric} = {shown} "
        f"({rule.comparator} {rule.threshold:g} over {rule.window_s}s)"
    )
    return {"text": text, "trace_insights": body}


def _link_parameters(rule: Any) -> dict[str, Any]:
    parameters = rule.parameters
    if rule.metric == "tool_error_rate":
        return {"tool_name": parameters["tool_name"]}
    if rule.metric == "assessment_failure_rate":
        return {"assessment_name": parameters["assessment_name"]}
    if rule.metric == "npmi":
        return {"dimension1": parameters["dimension1"], "dimension2": parameters["dimension2"]}
    if rule.metric == "cost" and parameters.get("tag_key"):
        return {"tag_key": parameters["tag_key"]}
    return {}


def _cost(aggregates: Any, bucket: Any, parameters: Any, traces: int) -> Measurement:
    """USD over the window: in total, of a model, of a tag value, or of the costliest value
    of a tag key (named as the measurement's subject)."""
    model, key = parameters.get("model"), parameters.get("tag_key")
    if model:
        return Measurement(
            float(money.usd(money.read(bucket, fields.model(model, "cost")))), traces
        )
    if not key:
        return Measurement(float(money.usd(money.read(bucket, fields.COST))), traces)
    costs, _ = tag_costs(total(aggregates.counters(lambda e, r, s: keys.tag_cost(e, r, s, key))))
    costs.pop(dimensions.OTHER, None)  # values past the cap, together: no one value
    wanted = parameters.get("tag_value")
    if wanted is not None:
        return Measurement(float(money.usd(costs.get(wanted, 0))), traces, wanted)
    if not costs:
        return Measurement(0.0, traces)
    value, top = max((cost, value) for value, cost in costs.items())
    return Measurement(float(money.usd(value)), traces, top)


def _percent(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def _compare(value: float, comparator: str, threshold: float) -> bool:
    return {
        ">": value > threshold,
        ">=": value >= threshold,
        "<": value < threshold,
        "<=": value <= threshold,
    }[comparator]
