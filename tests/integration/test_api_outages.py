"""A dependency outage is a 503 that names it, with Retry-After — never a 500 —; what Redis
holds is still served while PostgreSQL is down; every answer is counted in the request metric,
and the log says it once per kind a minute, not once per request (issue 15)."""

import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    VOLUME,
    export_spans,
    sdk_spans,
    service_env,
    start_up,
    traces_counted,
    wait_for,
)

pytestmark = pytest.mark.integration
SEARCH = "/api/3.0/mlflow/traces/search"


def test_outages_are_503s_and_redis_answers_while_postgresql_is_down(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from services import Postgres, Redis

    home = Path(tempfile.mkdtemp(prefix="trace-insights-outage-"))
    home.chmod(0o755)  # PostgreSQL runs as its own user
    postgres, redis = Postgres(home / "postgres"), Redis(tmp_path / "redis")
    postgres.start()
    redis.start()
    log = tmp_path / "up.log"
    env = service_env(database_url=postgres.url, redis_url=redis.url, log_format="json")
    up = start_up(tmp_path / "data", env, log=log)
    experiment = f"o-{uuid.uuid4().hex[:6]}"
    body = {"experiment_ids": [experiment]}
    try:
        export_spans(up.otlp_url, sdk_spans(5, seed=2), experiment)

        def volume() -> httpx.Response:
            return httpx.post(f"{up.api_url}{VOLUME}", json=body, timeout=30)

        wait_for(lambda: traces_counted(up.api_url, experiment) == 5, 60, "5 traces")
        postgres.stop()
        for _ in range(20):
            served = volume()
            assert served.status_code == 200, served.text
            assert served.json()["summary"]["count"] == 5, "from Redis, PostgreSQL down"
            search = httpx.post(f"{up.api_url}{SEARCH}", json=body, timeout=30)
            assert search.status_code == 503, search.text
            assert search.headers["retry-after"].isdigit()
            assert search.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "database" in search.json()["message"]
        postgres.start()
        redis.stop()
        for _ in range(20):
            refused = volume()
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert "aggregate store" in refused.json()["message"]
        metrics = httpx.get(f"{up.api_url}/metrics").text
        assert 'route="/api/3.0/mlflow/traces/search",status="503"' in metrics
        assert 'route="/traffic-cost/volume",status="503"' in metrics
    finally:
        up.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(home, ignore_errors=True)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    outages = [line for line in lines if line.get("msg") == "dependency unavailable"]
    dependencies = sorted(line["dependency"] for line in outages)
    assert dependencies == ["the aggregate store (Redis)", "the database"], outages
    assert not [line for line in lines if line.get("level") == "error" and "api" in line["logger"]]
    assert "Traceback" not in log.read_text()
