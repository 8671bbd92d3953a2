"""Alert rules end to end, with a real HTTP receiver on loopback: a burst of errors fires exactly
one signed notification, recovery resolves it, a receiver that is down gets the notification
once it is back, and a restart in the middle of an incident neither repeats nor loses one."""

import hashlib
import hmac
import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support import (
    ROOT,
    Running,
    export_spans,
    free_ports,
    sdk_spans,
    service_env,
    start_up,
    wait_for,
)

pytestmark = pytest.mark.integration
ALERTS = "/api/3.0/mlflow/traces/insights/alerts"
SECRET = "a-test-secret-of-some-length"


class Receiver:
    """Records POSTs; answers 503 to the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[tuple[dict, bytes, dict]] = []  # headers, body, payload
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, body, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[str]:
        return [payload["state"] for _, _, payload in self.received]

    def close(self) -> None:
        self.server.shutdown()


def _traces(count: int, failing: bool) -> list:
    """Exactly ``count`` whole traces whose root is (or is not) an error."""
    kept: list = []
    while True:
        spans = sdk_spans(count * 3, seed=None, error_rate=1.0 if failing else 0.0)
        roots = {s.context.trace_id: s.status.status_code.name for s in spans if s.parent is None}
        chosen = {t for t, status in roots.items() if (status == "ERROR") == failing}
        for trace_id in chosen:
            if len({s.context.trace_id for s in kept}) < count:
                kept += [s for s in spans if s.context.trace_id == trace_id]
        if len({s.context.trace_id for s in kept}) == count:
            return kept


def _rule(client: httpx.Client, experiment: str, receiver: Receiver) -> dict:
    response = client.post(
        ALERTS,
        json={
            "name": "errors spike",
            "experiment_ids": [experiment],
            "metric": "error_rate",
            "comparator": ">",
            "threshold": 50,
            "window_s": 600,
            "min_traces": 3,
            "webhooks": [receiver.url],
            "secret": SECRET,
            "cooldown_s": 0,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_burst_fires_once_and_recovery_resolves(deployment: Running):
    experiment = f"alert-{uuid.uuid4().hex[:8]}"
    client = httpx.Client(base_url=deployment.api_url, timeout=30)
    export_spans(deployment.otlp_url, _traces(2, failing=False), experiment)
    volume = {"experiment_ids": [experiment]}
    wait_for(
        lambda: (
            client.post(
                "/api/3.0/mlflow/traces/insights/traffic-cost/volume", json=volume
            ).status_code
            == 200
        ),
        30,
        "the experiment",
    )
    receiver = Receiver(failures=2)  # down for the first two attempts
    rule = _rule(client, experiment, receiver)
    assert rule["state"] == "ok" and rule["secret"] == SECRET

    export_spans(deployment.otlp_url, _traces(8, failing=True), experiment)  # 8 of 10 fail
    wait_for(lambda: receiver.events() == ["firing"], 60, "one firing notification")
    headers, body, payload = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-signature"] == expected
    assert payload["rule_id"] == rule["rule_id"] and payload["value"] > 50
    assert payload["link"]["path"].endswith("/traffic-cost/errors")
    deliveries = client.get(f"{ALERTS}/{rule['rule_id']}/deliveries").json()["deliveries"]
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [
        ("firing", "delivered", 3)
    ], "retried past the outage, delivered once"
    assert client.get(f"{ALERTS}/{rule['rule_id']}").json()["state"] == "firing"

    export_spans(deployment.otlp_url, _traces(20, failing=False), experiment)  # 8 of 30
    wait_for(lambda: receiver.events() == ["firing", "resolved"], 60, "the resolution")
    assert client.get(f"{ALERTS}/{rule['rule_id']}").json()["state"] == "ok"
    export_spans(deployment.otlp_url, _traces(3, failing=False), experiment)
    wait_for(
        lambda: (
            client.get(f"{ALERTS}/{rule['rule_id']}").json()["last_value"]
            == pytest.approx(800 / 33)
        ),
        30,
        "an evaluation of the new traffic",
    )
    assert receiver.events() == ["firing", "resolved"], "no repeat while nothing changes"
    receiver.close()


def test_bad_rules_are_refused_with_a_reason(deployment: Running):
    client = httpx.Client(base_url=deployment.api_url, timeout=30)
    experiment = f"alert-{uuid.uuid4().hex[:8]}"
    export_spans(deployment.otlp_url, _traces(1, failing=False), experiment)
    wait_for(
        lambda: (
            client.get(
                "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment}
            ).status_code
            == 200
        ),
        30,
        "the experiment",
    )
    base = {
        "name": "r",
        "experiment_ids": [experiment],
        "metric": "error_rate",
        "threshold": 5,
        "webhooks": ["https://hooks.example.com/x"],
    }
    for change, status, mention in [
        ({"metric": "happiness"}, 400, "metric"),
        ({"window_s": 1000 * 86_400}, 400, "window_s"),
        ({"webhooks": ["ftp://example.com/x"]}, 400, "webhooks"),
        ({"webhooks": []}, 400, "webhooks"),
        ({"metric": "tool_error_rate"}, 400, "tool_name"),
        (
            {
                "metric": "npmi",
                "window_s": 3600,
                "parameters": {
                    "dimension1": {"name": "colour", "parameters": {"value": "x"}},
                    "dimension2": {"name": "status", "parameters": {"value": "ERROR"}},
                },
            },
            400,
            "colour",
        ),
        ({"comparator": "~"}, 400, "comparator"),
        ({"experiment_ids": ["nope"]}, 404, "nope"),
    ]:
        response = client.post(ALERTS, json={**base, **change})
        assert response.status_code == status, (change, response.text)
        assert mention in response.json()["message"]
    assert client.get(f"{ALERTS}/r-nope").status_code == 404
    created = client.post(ALERTS, json=base).json()
    changed = client.patch(f"{ALERTS}/{created['rule_id']}", json={"threshold": 9}).json()
    assert changed["threshold"] == 9 and "secret" not in changed
    assert client.delete(f"{ALERTS}/{created['rule_id']}").status_code == 200
    assert client.get(f"{ALERTS}/{created['rule_id']}").status_code == 404


def test_a_restart_mid_incident_neither_repeats_nor_loses(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))

    ports = free_ports()
    receiver = Receiver()
    experiment = "restarted"
    first = start_up(tmp_path / "data", service_env(webhook_allow_private=True), ports)
    client = httpx.Client(base_url=first.api_url, timeout=30)
    export_spans(first.otlp_url, _traces(2, failing=False), experiment)
    wait_for(
        lambda: (
            client.get(
                "/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment}
            ).status_code
            == 200
        ),
        30,
        "the experiment",
    )
    rule = _rule(client, experiment, receiver)
    export_spans(first.otlp_url, _traces(8, failing=True), experiment)
    wait_for(lambda: receiver.events() == ["firing"], 60, "the firing")
    assert first.stop() == 0
    second = start_up(tmp_path / "data", service_env(webhook_allow_private=True), ports)
    try:
        client = httpx.Client(base_url=second.api_url, timeout=30)
        assert client.get(f"{ALERTS}/{rule['rule_id']}").json()["state"] == "firing"
        export_spans(second.otlp_url, _traces(1, failing=True), experiment)
        wait_for(
            lambda: (
                client.get(f"{ALERTS}/{rule['rule_id']}").json()["last_value"]
                == pytest.approx(900 / 11)
            ),
            30,
            "an evaluation after the restart",
        )
        assert receiver.events() == ["firing"], "not notified again"
        export_spans(second.otlp_url, _traces(30, failing=False), experiment)
        wait_for(lambda: receiver.events() == ["firing", "resolved"], 60, "the resolution")
    finally:
        assert second.stop() == 0
        receiver.close()
