"""OTLP metrics and logs, which Trace Insights does not keep. SDKs that export every signal
to one endpoint (Traceloop, an OTel Collector's otlphttp exporter) post them beside the traces;
a 404 makes them log an error on every export, and some retry it. Each is answered 200 with
every item rejected in ``partial_success`` and the reason: the exporter does not retry (OTLP:
a partial success is final) and is not told the data was stored."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics


class Unreadable(ValueError):
    """A body that is not an OTLP request of its signal."""


@dataclass(frozen=True)
class Signal:
    name: str
    request: type[Message]
    items: Callable[[Any], int]  # how many data points or records a request holds
    rejected: Callable[[int, str], Message]  # the response rejecting that many

    def refuse(self, body: bytes, as_json: bool) -> Message:
        """The response that rejects every item of ``body``."""
        request = self.request()
        try:
            if as_json:
                json_format.Parse(body or b"{}", request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(body)
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
            raise Unreadable(f"malformed OTLP {self.name} request: {exc}") from None
        reason = f"Trace Insights keeps traces only; {self.name} are not stored"
        return self.rejected(self.items(request), reason)


def _points(request: Any) -> int:
    return sum(
        len(getattr(metric, kind).data_points)
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if (kind := metric.WhichOneof("data"))
    )


def _records(request: Any) -> int:
    return sum(
        len(scope.log_records)
        for resource in request.resource_logs
        for scope in resource.scope_logs
    )


SIGNALS = {
    "/v1/metrics": Signal(
        "metrics",
        metrics.ExportMetricsServiceRequest,
        _points,
        lambda n, reason: metrics.ExportMetricsServiceResponse(
            partial_success=metrics.ExportMetricsPartialSuccess(
                rejected_data_points=n, error_message=reason
            )
        ),
    ),
    "/v1/logs": Signal(
        "logs",
        logs.ExportLogsServiceRequest,
        _records,
        lambda n, reason: logs.ExportLogsServiceResponse(
            partial_success=logs.ExportLogsPartialSuccess(
                rejected_log_records=n, error_message=reason
            )
        ),
    ),
}
