"""Prometheus metrics of the aggregator, and its /health, /ready and /metrics endpoints."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

SPANS = Counter("trace_insights_aggregator_spans", "Spans read from the topic")
TRACES_FINALIZED = Counter("trace_insights_aggregator_traces_finalized", "Traces finalized")
LATE_SPANS = Counter(
    "trace_insights_aggregator_late_spans", "Spans after their trace's finalization"
)
BATCH_SECONDS = Histogram(
    "trace_insights_aggregator_batch_seconds",
    "One partition batch: truth, aggregates, commit",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FENCE_CONFLICTS = Counter(
    "trace_insights_aggregator_fence_conflicts", "Updates recomputed because a fence moved"
)
FAILED_BATCHES = Counter("trace_insights_aggregator_failed_batches", "Batches retried after errors")
DEAD_LETTERS = Counter(
    "trace_insights_aggregator_dead_letters",
    "Records kept as dead letters, by where they failed",
    ["stage"],
)
SPANS_SKIPPED = Counter(
    "trace_insights_aggregator_spans_skipped",
    "Spans read from the topic that no store can hold (written by another producer), by why",
    ["reason"],
)
LAG = Gauge("trace_insights_aggregator_lag", "Records behind the partition's end", ["partition"])
WATERMARK = Gauge(
    "trace_insights_aggregator_watermark_ms", "Latest record timestamp applied", ["partition"]
)


class Liveness:
    """What /health and /ready say of the loop. /health fails when the loop has not turned for
    ``stale_s``; /ready also before its first turn, and while batches have kept failing for
    ``stalled_s`` (alive, but not consuming: a store outage, or a record it cannot apply)."""

    def __init__(self, stale_s: float = 120.0, stalled_s: float = 15.0) -> None:
        self._stale_s = stale_s
        self._stalled_s = stalled_s
        self._last = time.monotonic()
        self._failing: tuple[float, str] | None = None  # since, why
        self.ready = False

    def beat(self) -> None:
        self._last = time.monotonic()

    def failed(self, reason: str) -> None:
        if self._failing is None:
            self._failing = (time.monotonic(), reason)

    def applied(self) -> None:
        self._failing = None

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._last < self._stale_s

    def problems(self) -> list[str]:
        """Why it is not ready, in words; empty when it is."""
        out = []
        if not self.alive:
            out.append(f"the aggregator loop has not turned for {self._stale_s:.0f} s")
        elif not self.ready:
            out.append("the aggregator is starting")
        failing = self._failing
        if failing is not None and time.monotonic() - failing[0] >= self._stalled_s:
            since = time.monotonic() - failing[0]
            out.append(
                f"the aggregator is not consuming: batches failing for {since:.0f} s ({failing[1]})"
            )
        return out


def serve(liveness: Liveness, host: str, port: int) -> ThreadingHTTPServer:
    """Serve in a daemon thread; returns the server (its port is ``server_address[1]``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200 if liveness.alive else 503, b'{"status": "ok"}')
            elif self.path == "/ready":
                problems = liveness.problems()
                body = {"status": "not ready" if problems else "ready", "problems": problems}
                self._reply(503 if problems else 200, json.dumps(body).encode())
            elif self.path == "/metrics":
                self._reply(200, generate_latest(), CONTENT_TYPE_LATEST)
            else:
                self._reply(
                    404, b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "no such endpoint"}'
                )

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: probes would flood the log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="aggregator-http", daemon=True).start()
    return server
