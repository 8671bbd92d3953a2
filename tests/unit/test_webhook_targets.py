"""Alert webhooks go to public addresses only, unless the operator allows internal ones: a rule
aimed at cloud metadata, Redis on localhost or a private address is refused when written, and
a delivery connects only to an address it checked (issue 15: all four were accepted, and one
was delivered 0.1 s later)."""

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.unit.conftest import embedded
from trace_insights.api.alerts.targets import check_url, client

ALERTS = "/api/3.0/mlflow/traces/insights/alerts"
INTERNAL = [
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:6379/",
    "http://[::1]:5432/",
    "http://10.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://192.168.1.20/hook",
    "http://0.0.0.0/hook",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_targets_are_refused_unless_allowed(url):
    with pytest.raises(ValueError, match="TRACE_INSIGHTS_WEBHOOK_ALLOW_PRIVATE"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


def test_public_targets_and_names_pass_the_check():
    check_url("https://hooks.example.com/x", allow_private=False)
    check_url("https://93.184.216.34/x", allow_private=False)


def test_a_rule_aimed_inside_is_refused_by_the_api(tmp_path):
    with embedded(tmp_path) as api:
        created = api.client.post("/api/2.0/mlflow/experiments/create", json={"name": "a"})
        experiment = created.json()["experiment_id"]
        rule = {
            "name": "r",
            "experiment_ids": [experiment],
            "metric": "error_rate",
            "threshold": 5,
            "webhooks": ["http://169.254.169.254/latest/meta-data/"],
        }
        refused = api.client.post(ALERTS, json=rule)
        assert refused.status_code == 400, refused.text
        assert "link-local" in refused.json()["message"]
        assert "webhooks" in refused.json()["message"]


def test_a_delivery_does_not_connect_to_a_name_that_resolves_inside():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://localhost:{server.server_address[1]}/hook"  # a name, not a literal
    try:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            client(allow_private=False).post(url, content=b"{}")
        assert received == []
        assert client(allow_private=True).post(url, content=b"{}").status_code == 204
        assert received == ["/hook"]
    finally:
        server.shutdown()
