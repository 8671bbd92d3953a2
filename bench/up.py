"""``trace-insights up`` end to end: OTLP/HTTP requests in, traces counted by the insights API.

Run by hand: ``.venv/bin/python bench/up.py [--traces 20000] [--clients 4]``. Starts ``up`` (its
embedded stores) in a temporary directory and has ``--clients`` threads post pre-encoded
OTLP/HTTP protobuf requests of realistic agent traces (300 spans each, over keep-alive) until the
insights API counts every trace. Reported: spans/s from the first request to the last trace
counted, and ``up``'s CPU per 100k spans (from /proc). Baseline in the same run: the same
requests posted by the same clients to a server that only reads each body and answers 200,
the ceiling of these clients on this machine.
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402

from tests.support import sdk_spans, service_env, start_up, traces_counted  # noqa: E402

CHUNK = 300  # spans per request, as the SDK's batch exporter sends them at most by default


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests(spans: list) -> list[bytes]:
    return [
        encode_spans(spans[start : start + CHUNK]).SerializeToString()
        for start in range(0, len(spans), CHUNK)
    ]


def _post_all(url: str, bodies: list[bytes], experiment: str, clients: int) -> None:
    """Post every body once, shared by ``clients`` threads, each over one keep-alive client."""
    pending = list(reversed(bodies))
    lock = threading.Lock()
    headers = {"content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment}

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while True:
                with lock:
                    if not pending:
                        return
                    body = pending.pop()
                reply = http.post(f"{url}/v1/traces", content=body, headers=headers)
                assert reply.status_code == 200, reply.text

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the collector's clients use it

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def baseline(bodies: list[bytes], clients: int) -> float:
    """Seconds for the clients to post every body to a server that only reads it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    started = time.monotonic()
    _post_all(f"http://127.0.0.1:{server.server_port}", bodies, "b", clients)
    elapsed = time.monotonic() - started
    server.shutdown()
    serving.join()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    spans = sdk_spans(args.traces, seed=3)
    bodies = _requests(spans)
    experiment = f"up-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="trace-insights-bench-up-") as data:
        up = start_up(Path(data), service_env())
        try:
            # a new experiment's first batch is made whole by a rebuild: one trace first
            _post_all(up.otlp_url, _requests(sdk_spans(1, seed=2)), experiment, 1)
            while traces_counted(up.api_url, experiment) < 1:
                time.sleep(0.1)
            time.sleep(1)
            cpu_before = _cpu_seconds(up.process.pid)
            started = time.monotonic()
            _post_all(up.otlp_url, bodies, experiment, args.clients)
            accepted = time.monotonic() - started
            while traces_counted(up.api_url, experiment) < args.traces + 1:
                time.sleep(0.05)
                if time.monotonic() - started > 900:
                    raise RuntimeError("up did not count every trace in 15 minutes")
            wall = time.monotonic() - started
            cpu = _cpu_seconds(up.process.pid) - cpu_before
        finally:
            up.stop()
    floor = baseline(bodies, args.clients)
    n = len(spans)
    print(f"\n| {'what':<58} | {'spans/s':>9} | {'CPU s / 100k spans':>18} |")
    print(f"|{'-' * 60}|{'-' * 10}:|{'-' * 19}:|")
    print(
        f"| {'up: OTLP/HTTP → counted by the insights API':<58} | {n / wall:>9,.0f} | "
        f"{cpu / n * 100_000:>18.1f} |"
    )
    print(f"| {'up: OTLP/HTTP requests acknowledged':<58} | {n / accepted:>9,.0f} | {'':>18} |")
    print(
        f"| {'baseline: the same clients, a server that only reads':<58} | {n / floor:>9,.0f} | "
        f"{'':>18} |"
    )
    print(f"{args.traces} traces, {n} spans, {len(bodies)} requests, {args.clients} clients")


if __name__ == "__main__":
    main()
