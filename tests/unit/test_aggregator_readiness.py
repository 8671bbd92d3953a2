"""An aggregator that is alive but not consuming says so: while an outage makes its batches
fail, the loop goes on (retrying, never dying), and after ``stalled_s`` its /ready — in
``up``, the API's /ready — names why, until a batch applies again."""

import pytest
from redis.exceptions import ConnectionError

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded
from trace_insights.aggregator.metrics import Liveness


def test_liveness_reports_batches_failing_past_the_grace_and_clears_on_success():
    liveness = Liveness(stalled_s=0.0)
    assert liveness.problems() == ["the aggregator is starting"]
    liveness.ready = True
    assert liveness.problems() == []
    liveness.failed("partition 2: OperationalError")
    liveness.failed("partition 2: ValueError")  # the first failure of a stretch is kept
    [problem] = liveness.problems()
    assert "not consuming" in problem and "partition 2: OperationalError" in problem
    liveness.applied()
    assert liveness.problems() == []
    assert Liveness(stalled_s=60.0).problems() == ["the aggregator is starting"]


def test_an_outage_neither_kills_the_loop_nor_goes_unreported(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    with embedded(tmp_path) as api:
        aggregator = api.aggregator
        aggregator.liveness = Liveness(stalled_s=0.0)
        aggregator.liveness.ready = True
        context = api.client.app.state.context
        context.checks.append(aggregator.liveness.problems)  # as ``up`` wires its aggregator
        publish_to_bus(api.bus, sdk_spans(3, seed=8), "a")

        def broken(update: object) -> bool:
            raise ConnectionError("Redis is restarting")

        monkeypatch.setattr(aggregator.store, "apply", broken)  # the fault, injected
        assert aggregator.run_once(poll_timeout_ms=1) == 0
        ready = api.client.get("/ready")
        assert ready.status_code == 503
        assert any("ConnectionError" in p for p in ready.json()["problems"]), ready.json()
        monkeypatch.undo()
        api.drain()
        assert api.client.get("/ready").status_code == 200
        volume = api.client.post(
            "/api/3.0/mlflow/traces/insights/traffic-cost/volume", json={"experiment_ids": ["a"]}
        )
        assert volume.json()["summary"]["count"] == 3, "the retried batch applied once"
