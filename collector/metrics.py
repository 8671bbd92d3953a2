"""Prometheus metrics of the collector, served at ``/metrics`` on the OTLP/HTTP port."""

from prometheus_client import Counter, Gauge, Histogram

SPANS_RECEIVED = Counter("trace_insights_collector_spans_received", "Spans received", ["transport"])
SPANS_ACCEPTED = Counter("trace_insights_collector_spans_accepted", "Spans acknowledged by Kafka")
SPANS_REJECTED = Counter(
    "trace_insights_collector_spans_rejected", "Spans rejected as invalid", ["reason"]
)
REQUESTS = Counter(
    "trace_insights_collector_requests", "Export requests by outcome", ["transport", "outcome"]
)
REQUEST_SECONDS = Histogram(
    "trace_insights_collector_request_seconds", "Export request latency", ["transport"]
)
PRODUCE_SECONDS = Histogram(
    "trace_insights_collector_produce_seconds", "Time from send to Kafka acknowledgement"
)
BUFFER_BYTES = Gauge(
    "trace_insights_collector_buffer_bytes", "Bytes sent to Kafka and not yet acknowledged"
)
CIRCUIT_OPENED = Counter(
    "trace_insights_collector_circuit_opened",
    "Times Kafka was found unavailable (publishes refused)",
)
OTHER_SIGNALS = Counter(
    "trace_insights_collector_other_signal_requests",
    "OTLP metrics and logs requests answered with every item rejected (not stored)",
    ["signal"],
)
