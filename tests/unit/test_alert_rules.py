"""Alert rule measurement and transitions on the embedded stores: windows, change rules
against a baseline, NPMI rules, min_traces, cooldown, and compare-and-set between evaluators."""

import time
from types import SimpleNamespace

import sqlalchemy as sa

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded
from trace_insights.api.alerts.engine import evaluate, measure
from trace_insights.api.alerts.worker import AlertWorker
from trace_insights.truth.models import AlertDelivery, AlertRule

DAY_NS = 86_400 * 10**9


def _rule(**overrides):
    values = dict(
        rule_id="r-1",
        name="r",
        experiment_ids=["a"],
        metric="trace_count",
        parameters={},
        window_s=600,
        comparator=">",
        threshold=5.0,
        min_traces=1,
        baseline=None,
        webhooks=["http://127.0.0.1:9/x"],
        secret="s" * 16,
        cooldown_s=0,
        slack=False,
        created_ms=0,
        state="ok",
        state_since_ms=0,
        last_value=None,
        last_evaluated_ms=None,
        last_notified_ms=None,
        version=0,
    )
    values.update(overrides)
    return values


def test_windows_baselines_and_npmi_are_measured_from_the_aggregates(tmp_path):
    with embedded(tmp_path) as api:
        now = time.time_ns()
        publish_to_bus(api.bus, sdk_spans(10, seed=1, end_ns=lambda i: now - i * 10**9), "a")
        publish_to_bus(api.bus, sdk_spans(4, seed=2, end_ns=lambda i: now - DAY_NS), "a")
        api.drain()
        context = api.client.app.state.context
        end = now // 10**6 + 1000
        assert measure(context, SimpleNamespace(**_rule()), end).value == 10
        change = SimpleNamespace(**_rule(baseline="day"))
        assert measure(context, change, end).value == 6, "|10 - 4|"
        npmi_rule = SimpleNamespace(
            **_rule(
                metric="npmi",
                window_s=7200,
                parameters={
                    "dimension1": {"name": "status", "parameters": {"value": "OK"}},
                    "dimension2": {"name": "status", "parameters": {"value": "OK"}},
                },
            )
        )
        found = measure(context, npmi_rule, end)
        assert found.traces == 10 and found.value in (1.0, None)


def test_transitions_notify_once_and_honour_min_traces_and_cooldown(tmp_path):
    with embedded(tmp_path) as api:
        now = time.time_ns()
        publish_to_bus(api.bus, sdk_spans(10, seed=3, end_ns=lambda i: now - i * 10**9), "a")
        api.drain()
        context = api.client.app.state.context
        with context.engine.begin() as connection:
            quiet = _rule(rule_id="r-3", cooldown_s=3600, last_notified_ms=now // 10**6)
            connection.execute(
                sa.insert(AlertRule), [_rule(min_traces=50), _rule(rule_id="r-2"), quiet]
            )

        def row(rule_id: str):
            with context.engine.connect() as connection:
                return connection.execute(
                    sa.select(AlertRule).where(AlertRule.rule_id == rule_id)
                ).first()

        assert evaluate(context, row("r-1")) is None and row("r-1").state == "ok", "too few traces"
        stale = row("r-2")
        assert evaluate(context, stale) == "firing"
        assert evaluate(context, stale) is None, "another evaluator already moved it"
        assert row("r-2").state == "firing"
        assert evaluate(context, row("r-3")) is None, "cooldown: no announcement"
        assert row("r-3").state == "firing"
        with context.engine.connect() as connection:
            events = connection.execute(sa.select(AlertDelivery.rule_id, AlertDelivery.event)).all()
        assert events == [("r-2", "firing")]
        with context.engine.begin() as connection:
            connection.execute(sa.update(AlertRule).values(threshold=100.0))
        assert evaluate(context, row("r-2")) == "resolved"
        assert evaluate(context, row("r-3")) is None, "its firing was never announced"


def test_the_worker_evaluates_a_rule_once_per_change_of_its_experiment_drops_included(tmp_path):
    with embedded(tmp_path) as api:
        context = api.client.app.state.context
        with context.engine.begin() as connection:
            connection.execute(sa.insert(AlertRule), [_rule()])

        def evaluations() -> int:
            with context.engine.connect() as connection:
                return connection.scalar(sa.select(AlertRule.version))

        worker = AlertWorker(context)  # stepped here, not started
        worker.evaluate_once()
        assert evaluations() == 1, "a new rule is evaluated at once"
        publish_to_bus(api.bus, sdk_spans(3, seed=4), "a")
        api.drain()
        worker.evaluate_once()
        worker.evaluate_once()
        assert evaluations() == 2, "once for the update, not again without one"
        context.store.drop("a", None, None)  # a rebuild starts: the aggregates are not whole
        worker.evaluate_once()
        worker.evaluate_once()
        assert evaluations() == 2, "a rule waits while its experiment is rebuilt"
        publish_to_bus(api.bus, sdk_spans(2, seed=5), "a")
        api.drain()  # its update waits for the rebuild, which the aggregator then runs
        assert context.store.generations(["a"]) != [None]
        worker.evaluate_once()
        worker.evaluate_once()
        assert evaluations() == 3, "once for the lost stretch and the rebuild, not at every step"
        publish_to_bus(api.bus, sdk_spans(2, seed=6), "a")
        api.drain()
        worker.evaluate_once()
        assert evaluations() == 4, "the update after the rebuild is followed"
