"""Stored traces in MLflow's wire shapes: TraceInfoV3, and spans as the OTLP Span messages
MLflow's GetTrace and BatchGetTraces carry (protobuf's own JSON mapping, so bytes are base64
and enums their names, exactly as MLflow's client parses them)."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from trace_insights.api.mlflow.schemas import (
    SPANS_LOCATION,
    AssessmentOut,
    ExperimentLocation,
    TraceInfo,
    TraceLocation,
)
from trace_insights.core import money
from trace_insights.core.records import IN_PROGRESS, trace_times
from trace_insights.core.trace_tags import MLFLOW_METADATA

TRACE_NAME = "mlflow.traceName"  # MLflow's tag for the root span's name
TOKEN_USAGE = "mlflow.trace.tokenUsage"  # MLflow's metadata: JSON of the trace's tokens
COST = "mlflow.trace.cost"  # and of its cost in USD (MLflow's floats: {"total_cost": …})
_STATUS = {
    "OK": Status.STATUS_CODE_OK,
    "ERROR": Status.STATUS_CODE_ERROR,
}


def trace_info(row: Any, assessments: list[AssessmentOut]) -> TraceInfo:
    """A finalized trace (a ``traces`` row)."""
    return _info(
        row.trace_id,
        row.experiment_id,
        request_time=row.timestamp_ms,
        duration=row.execution_time_ms,
        state=row.status,
        name=row.root_name,
        tokens=(row.input_tokens, row.output_tokens),
        cost=row.cost,
        tags=row.tags,
        assessments=assessments,
    )


def open_trace_info(spans: Sequence[Any], assessments: list[AssessmentOut]) -> TraceInfo:
    """A trace still being assembled, from the spans stored so far."""
    request_time, duration = trace_times(
        min(s.start_time_ns for s in spans), max(s.end_time_ns for s in spans)
    )
    return _info(
        spans[0].trace_id,
        spans[0].experiment_id,
        request_time=request_time,
        duration=duration,
        state=IN_PROGRESS,
        name=next((s.name for s in spans if s.parent_span_id is None), None),
        tokens=(sum(s.input_tokens or 0 for s in spans), sum(s.output_tokens or 0 for s in spans)),
        cost=sum(s.cost for s in spans if s.cost is not None),
        tags=spans[0].trace_tags,
        assessments=assessments,
    )


def _info(
    hex_id: str,
    experiment_id: str,
    *,
    request_time: int,
    duration: int,
    state: str,
    name: str | None,
    tokens: tuple[int, int],
    cost: int | None,
    tags: Mapping[str, str],
    assessments: list[AssessmentOut],
) -> TraceInfo:
    tokens_in, tokens_out = tokens
    usage = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    metadata = {TOKEN_USAGE: json.dumps({**usage, "total_tokens": tokens_in + tokens_out})}
    if cost:
        metadata[COST] = json.dumps({"total_cost": float(money.usd(cost))})
    metadata |= {key: tags[tag] for key, tag in MLFLOW_METADATA.items() if tag in tags}
    shown = {**tags, SPANS_LOCATION: "TRACKING_STORE"}  # every span is in this store
    if name is not None:
        shown[TRACE_NAME] = name
    return TraceInfo(
        trace_id=f"tr-{hex_id}",
        trace_location=TraceLocation(
            mlflow_experiment=ExperimentLocation(experiment_id=experiment_id)
        ),
        request_time=request_time,
        execution_duration=duration,
        state=state,
        trace_metadata=metadata,
        tags=shown,
        assessments=assessments,
    )


def otlp_span(row: Any) -> dict[str, Any]:
    """A stored span as OTLP. Event names are all that is kept of events, so none are sent
    (an event without its time would be made up)."""
    span = OtlpSpan(
        trace_id=bytes.fromhex(row.trace_id),
        span_id=bytes.fromhex(row.span_id),
        parent_span_id=bytes.fromhex(row.parent_span_id) if row.parent_span_id else b"",
        name=row.name,
        start_time_unix_nano=row.start_time_ns,
        end_time_unix_nano=row.end_time_ns,
        status=Status(
            code=_STATUS.get(row.status, Status.STATUS_CODE_UNSET), message=row.status_message
        ),
    )
    for key, value in row.attributes.items():
        _any_value(value, span.attributes.add(key=key).value)
    return MessageToDict(span, preserving_proto_field_name=True)


def _any_value(value: Any, out: AnyValue) -> None:
    """The inverse of ``conventions.value_of`` (bytes come back as their hex string)."""
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()
        for item in value:
            _any_value(item, out.array_value.values.add())
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        for key, item in value.items():
            _any_value(item, out.kvlist_value.values.add(key=key).value)
