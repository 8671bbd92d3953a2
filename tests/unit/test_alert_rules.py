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


def test_cost_rules_measure_a_total_a_model_a_tag_value_and_the_costliest_value(tmp_path):
    """USD over the window, from the aggregates; a rule on a tag key alone watches its
    costliest value ("any user above $5") and names it in the notification."""
    from collections import Counter

    from tests.contract.test_cost_contract import _expected_cost, _traces
    from trace_insights.core import money

    with embedded(tmp_path) as api:
        now = time.time_ns()
        spans, calls = _traces(14, base_ns=now - 20 * 60 * 10**9)
        publish_to_bus(api.bus, spans, "a")
        api.drain()
        context = api.client.app.state.context
        by_user: Counter[str] = Counter()
        by_model: Counter[str] = Counter()
        for _, user, start, call in calls:
            found = None if call[0] == "acme-llm-7b" else _expected_cost(start, call)  # no override
            by_user[user] += found or 0
            by_model[call[0]] += found or 0
        end = now // 10**6 + 1000

        def measured(**parameters):
            rule = SimpleNamespace(**_rule(metric="cost", window_s=3600, parameters=parameters))
            return measure(context, rule, end)

        assert measured().value == float(money.usd(sum(by_user.values())))
        assert measured(model="gpt-4o").value == float(money.usd(by_model["gpt-4o"]))
        assert measured(tag_key="user", tag_value="bob").value == float(money.usd(by_user["bob"]))
        top, cost = by_user.most_common(1)[0]
        costliest = measured(tag_key="user")
        assert (costliest.value, costliest.subject) == (float(money.usd(cost)), top)

        rule = _rule(metric="cost", window_s=3600, parameters={"tag_key": "user"}, threshold=0.0)
        with context.engine.begin() as connection:
            connection.execute(sa.insert(AlertRule), [rule])
            stored = connection.execute(sa.select(AlertRule)).one()
        assert evaluate(context, stored, end) == "firing"
        with context.engine.connect() as connection:
            payload = connection.scalar(sa.select(AlertDelivery.payload))
        assert payload["subject"] == top and payload["link"]["path"].endswith("/tags/metrics")
        assert payload["link"]["body"]["tag_key"] == "user"
