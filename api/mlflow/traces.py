"""Traces (MLflow's REST shapes): StartTraceV3, their tags, and reading them — the info, the
normalized spans, and MLflow's Trace with its spans as OTLP."""

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request

from trace_insights.api.context import Context
from trace_insights.api.errors import invalid, not_found
from trace_insights.api.mlflow.assessments import assessment_out, new_assessment, publish
from trace_insights.api.mlflow.changes import experiment_of, send, trace_hex
from trace_insights.api.mlflow.schemas import (
    SPANS_LOCATION,
    AssessmentOut,
    BatchGetTraceInfos,
    BatchGetTraceInfosResponse,
    BatchGetTracesResponse,
    Deleted,
    DeleteTraceTag,
    FullTrace,
    GetFullTraceResponse,
    GetTraceResponse,
    SetTraceTag,
    SpanOut,
    StartedTrace,
    StartedTraceInfo,
    StartTrace,
    TraceData,
    TraceInfo,
    TraceOut,
)
from trace_insights.api.mlflow.wire import open_trace_info, otlp_span, trace_info
from trace_insights.core import money
from trace_insights.core.trace_tags import MLFLOW_METADATA, TagEdit
from trace_insights.core.trace_tags import encode as encode_edits
from trace_insights.truth.models import Assessment as AssessmentRow
from trace_insights.truth.models import Span, Trace

router = APIRouter(prefix="/api/3.0/mlflow/traces")
v2 = APIRouter(prefix="/api/2.0/mlflow/traces")  # the tag routes MLflow's client calls


@router.post("", response_model=StartedTrace)
def start_trace(body: StartTrace, request: Request) -> StartedTrace:
    """MLflow 3's StartTraceV3, which its client calls after logging a trace's spans over
    OTLP: the spans are the trace here. The tags, the user and session metadata, and the
    assessments logged while the trace ran are kept, through the topic (after the spans in
    the trace's partition); the info is answered back, saying the spans are in this store
    (``mlflow.trace.spansLocation``), so the client does not upload them elsewhere."""
    context: Context = request.app.state.context
    sent = body.trace.trace_info
    hex_id = trace_hex(sent.trace_id)
    experiment = sent.trace_location.mlflow_experiment.experiment_id
    kept = {k: v for k, v in sent.tags.items() if not k.startswith("mlflow.")}
    metadata = sent.trace_metadata
    kept |= {tag: metadata[key] for key, tag in MLFLOW_METADATA.items() if key in metadata}
    if kept:
        edits = [TagEdit(hex_id, experiment, key, value) for key, value in kept.items()]
        send(context, hex_id, encode_edits(edits))
    for logged in sent.assessments:
        publish(context, new_assessment(logged, hex_id, experiment))
    info = sent.model_dump(mode="json")
    info["tags"] = {**sent.tags, SPANS_LOCATION: "TRACKING_STORE"}
    return StartedTrace(trace=StartedTraceInfo(trace_info=info))


@v2.patch("/{trace_id}/tags", response_model=Deleted)
@router.patch("/{trace_id}/tags", response_model=Deleted)
def set_trace_tag(trace_id: str, body: SetTraceTag, request: Request) -> Deleted:
    """MLflow's SetTraceTag (v2, which its client calls, and v3)."""
    return _edit(request.app.state.context, trace_id, body.key, body.value)


@v2.delete("/{trace_id}/tags", response_model=Deleted)
@router.delete("/{trace_id}/tags", response_model=Deleted)
def delete_trace_tag(
    trace_id: str, request: Request, body: DeleteTraceTag | None = None, key: str | None = None
) -> Deleted:
    """MLflow's DeleteTraceTagV3: the key in the body, or as a query parameter."""
    named = body.key if body is not None else key
    if not named:
        raise invalid("missing required field 'key'")
    return _edit(request.app.state.context, trace_id, named, None)


def _edit(context: Context, trace_id: str, key: str, value: str | None) -> Deleted:
    hex_id = trace_hex(trace_id)
    experiment = experiment_of(context, hex_id)
    send(context, hex_id, encode_edits([TagEdit(hex_id, experiment, key, value)]))
    return Deleted()


@router.get("/get", response_model=GetFullTraceResponse)
def get_full_trace(trace_id: str, request: Request) -> GetFullTraceResponse:
    """MLflow's GetTrace (v3): the info and the spans as OTLP."""
    info, spans = _one(request.app.state.context, trace_id)
    return GetFullTraceResponse(
        trace=FullTrace(trace_info=info, spans=[otlp_span(s) for s in spans])
    )


@router.get("/batchGet", response_model=BatchGetTracesResponse)
def batch_get_traces(
    request: Request,
    trace_ids: Annotated[list[str], Query(min_length=1, max_length=100)],
    experiment_ids: Annotated[list[str] | None, Query()] = None,
) -> BatchGetTracesResponse:
    """MLflow's BatchGetTraces: the traces found, in the order asked; absent ones are left
    out, as MLflow does."""
    found = _load(request.app.state.context, [trace_hex(t) for t in trace_ids], experiment_ids)
    return BatchGetTracesResponse(
        traces=[
            FullTrace(trace_info=info, spans=[otlp_span(s) for s in spans]) for info, spans in found
        ]
    )


@router.post("/batchGetInfos", response_model=BatchGetTraceInfosResponse)
def batch_get_trace_infos(body: BatchGetTraceInfos, request: Request) -> BatchGetTraceInfosResponse:
    found = _load(
        request.app.state.context, [trace_hex(t) for t in body.trace_ids], body.experiment_ids
    )
    return BatchGetTraceInfosResponse(trace_infos=[info for info, _ in found])


@router.get("/{trace_id}", response_model=GetTraceResponse)
def get_trace(trace_id: str, request: Request) -> GetTraceResponse:
    """MLflow's GetTraceInfoV3, with the normalized spans beside the info."""
    info, spans = _one(request.app.state.context, trace_id)
    return GetTraceResponse(
        trace=TraceOut(trace_info=info, data=TraceData(spans=[_span(s) for s in spans]))
    )


def _one(context: Context, trace_id: str) -> tuple[TraceInfo, list[Any]]:
    found = _load(context, [trace_hex(trace_id)])
    if not found:
        raise not_found(f"trace {trace_id!r} does not exist")
    return found[0]


def _load(
    context: Context, hex_ids: list[str], experiment_ids: list[str] | None = None
) -> list[tuple[TraceInfo, list[Any]]]:
    """The traces among ``hex_ids`` (finalized or still open), in that order, with their
    spans by start time: three queries whatever the number."""
    ids = list(dict.fromkeys(hex_ids))
    with context.engine.connect() as connection:
        traces = {
            row.trace_id: row
            for row in connection.execute(sa.select(Trace).where(Trace.trace_id.in_(ids)))
        }
        spans: dict[str, list[Any]] = {}
        by_start = sa.select(Span).where(Span.trace_id.in_(ids)).order_by(Span.start_time_ns)
        for row in connection.execute(by_start):
            spans.setdefault(row.trace_id, []).append(row)
        assessed: dict[str, list[AssessmentOut]] = {}
        by_creation = (
            sa.select(AssessmentRow)
            .where(AssessmentRow.trace_id.in_(ids))
            .order_by(AssessmentRow.created_ms)
        )
        for assessment in connection.execute(by_creation):
            assessed.setdefault(assessment.trace_id, []).append(assessment_out(assessment))
    out = []
    for hex_id in ids:
        trace, own = traces.get(hex_id), spans.get(hex_id, [])
        if trace is not None:
            info = trace_info(trace, assessed.get(hex_id, []))
        elif own:  # still being assembled
            info = open_trace_info(own, assessed.get(hex_id, []))
        else:
            continue
        if (
            experiment_ids is None
            or info.trace_location.mlflow_experiment.experiment_id in experiment_ids
        ):
            out.append((info, own))
    return out


def _span(row: Any) -> SpanOut:
    return SpanOut(
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        name=row.name,
        span_type=row.span_type,
        status=row.status,
        status_message=row.status_message,
        start_time_unix_nano=row.start_time_ns,
        end_time_unix_nano=row.end_time_ns,
        duration_ms=row.duration_ms,
        tool_name=row.tool_name,
        model=row.model,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        attributes=row.attributes,
        events=row.events,
        usage=row.usage,
        provider=row.provider,
        cost=money.text(row.cost) if row.cost is not None else None,
        priced_by=row.priced_by,
    )
