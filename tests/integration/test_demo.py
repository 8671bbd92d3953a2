"""``make run``'s demo (``trace-insights up --demo``): agent traffic through the collector and
an LLM judge's feedback through the API, so every view of the dashboard has something to show."""

import httpx
import pytest

from tests.support import service_env, start_up, traces_counted, wait_for

pytestmark = pytest.mark.integration
INSIGHTS = "/api/3.0/mlflow/traces/insights"


def test_demo_sends_traffic_and_feedback(tmp_path):
    running = start_up(tmp_path / "data", service_env(), demo=True)
    try:
        body = {"experiment_ids": ["0"]}

        def post(path: str, **extra) -> dict:
            reply = httpx.post(f"{running.api_url}{INSIGHTS}/{path}", json={**body, **extra})
            return reply.json() if reply.status_code == 200 else {}

        def judged() -> int:
            summary = post("assessments/metrics", assessment_name="correct").get("summary", {})
            return summary.get("total_count", 0)

        wait_for(lambda: traces_counted(running.api_url, "0") >= 20, 60, "demo traces")
        wait_for(lambda: judged() > 0, 60, "the demo judge's feedback")
        [assessment] = post("assessments/discovery")["data"]
        assert (assessment["assessment_name"], assessment["assessment_type"]) == (
            "correct",
            "pass-fail",
        )
        assert assessment["sources"] == ["LLM_JUDGE"]
        assert post("tools/discovery")["data"], "the demo's agents call tools"
        assert post("traffic-cost/tokens")["summary"]["total_tokens"] > 0
    finally:
        assert running.stop() == 0
