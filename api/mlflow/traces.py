"""Traces and their assessments (MLflow's REST shapes). Assessments are written through the
span topic — the aggregator stores them and moves the aggregates — so a new assessment is
readable here once the aggregator has applied it (typically well under a second)."""

import re
import time
import uuid
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.api.context import Context
from trace_insights.api.errors import TEMPORARILY_UNAVAILABLE, ApiError, invalid, not_found
from trace_insights.api.mlflow.schemas import (
    SPANS_LOCATION,
    AssessmentOut,
    AssessmentResponse,
    BatchGetTraceInfos,
    BatchGetTraceInfosResponse,
    BatchGetTracesResponse,
    CreateAssessment,
    Deleted,
    DeleteTraceTag,
    Expectation,
    Feedback,
    FullTrace,
    GetFullTraceResponse,
    GetTraceResponse,
    NewAssessment,
    SetTraceTag,
    Source,
    SpanOut,
    StartedTrace,
    StartedTraceInfo,
    StartTrace,
    TraceData,
    TraceInfo,
    TraceOut,
    UpdateAssessment,
)
from trace_insights.api.mlflow.wire import open_trace_info, otlp_span, trace_info
from trace_insights.api.publisher import Unavailable
from trace_insights.core.assessments import EXPECTATION, FEEDBACK, Assessment
from trace_insights.core.assessments import encode as encode_assessment
from trace_insights.core.trace_tags import MLFLOW_METADATA, TagEdit
from trace_insights.core.trace_tags import encode as encode_edits
from trace_insights.truth.models import Assessment as AssessmentRow
from trace_insights.truth.models import OpenTrace, Span, Trace

router = APIRouter(prefix="/api/3.0/mlflow/traces")
v2 = APIRouter(prefix="/api/2.0/mlflow/traces")  # the tag routes MLflow's client calls
_TRACE_ID = re.compile(r"^(?:tr-)?([0-9a-fA-F]{32})$")


def trace_hex(trace_id: str) -> str:
    """``tr-<32 hex>`` or bare hex → 32 lowercase hex; 400 otherwise."""
    match = _TRACE_ID.match(trace_id)
    if match is None:
        raise invalid(f"trace id {trace_id!r} is not 'tr-' followed by 32 hex digits")
    return match.group(1).lower()


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
        _send(context, hex_id, encode_edits(edits))
    for logged in sent.assessments:
        _publish(context, _new(logged, hex_id, experiment))
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
    experiment = _experiment_of(context, hex_id)
    _send(context, hex_id, encode_edits([TagEdit(hex_id, experiment, key, value)]))
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


@router.post("/{trace_id}/assessments", response_model=AssessmentResponse)
def create_assessment(
    trace_id: str, body: CreateAssessment, request: Request
) -> AssessmentResponse:
    context: Context = request.app.state.context
    hex_id = trace_hex(trace_id)
    experiment = _experiment_of(context, hex_id)
    new = body.assessment
    if new.overrides is not None:
        replaced = _stored(context, hex_id, new.overrides)
        if replaced.kind != FEEDBACK:
            raise invalid(
                f"assessment {new.overrides!r} is an expectation; only feedback is overridden"
            )
    assessment = _new(new, hex_id, experiment)
    _publish(context, assessment)
    return AssessmentResponse(
        assessment=_out_of(assessment, created_ms=assessment.timestamp_ms, valid=True)
    )


def _new(new: NewAssessment, hex_id: str, experiment: str) -> Assessment:
    return Assessment(
        assessment_id=f"a-{uuid.uuid4().hex}",
        trace_id=hex_id,
        experiment_id=experiment,
        name=new.assessment_name,
        value=new.feedback.value if new.feedback is not None else _expected(new.expectation),
        source_type=new.source.source_type,
        source_id=new.source.source_id,
        rationale=new.rationale,
        timestamp_ms=int(time.time() * 1000),
        kind=FEEDBACK if new.feedback is not None else EXPECTATION,
        overrides=new.overrides,
        details=new.metadata,
    )


@router.get("/{trace_id}/assessments/{assessment_id}", response_model=AssessmentResponse)
def get_assessment(trace_id: str, assessment_id: str, request: Request) -> AssessmentResponse:
    row = _stored(request.app.state.context, trace_hex(trace_id), assessment_id)
    return AssessmentResponse(assessment=assessment_out(row))


@router.patch("/{trace_id}/assessments/{assessment_id}", response_model=AssessmentResponse)
def update_assessment(
    trace_id: str, assessment_id: str, body: UpdateAssessment, request: Request
) -> AssessmentResponse:
    context: Context = request.app.state.context
    row = _stored(context, trace_hex(trace_id), assessment_id)
    change = body.assessment
    value = row.value
    if change.feedback is not None:
        if row.kind != FEEDBACK:
            raise invalid(f"assessment {assessment_id!r} is an expectation; give expectation")
        value = change.feedback.value
    if change.expectation is not None:
        if row.kind != EXPECTATION:
            raise invalid(f"assessment {assessment_id!r} is feedback; give feedback")
        value = change.expectation.value
    changed = Assessment(
        assessment_id=row.assessment_id,
        trace_id=row.trace_id,
        experiment_id=row.experiment_id,
        name=change.assessment_name if change.assessment_name is not None else row.name,
        value=value,
        source_type=row.source_type,
        source_id=row.source_id,
        rationale=change.rationale if change.rationale is not None else row.rationale,
        timestamp_ms=int(time.time() * 1000),
        kind=row.kind,
        overrides=row.overrides,
        details=change.metadata if change.metadata is not None else row.details,
    )
    _publish(context, changed)
    return AssessmentResponse(
        assessment=_out_of(changed, created_ms=row.created_ms, valid=row.valid)
    )


@router.delete("/{trace_id}/assessments/{assessment_id}", response_model=Deleted)
def delete_assessment(trace_id: str, assessment_id: str, request: Request) -> Deleted:
    context: Context = request.app.state.context
    row = _stored(context, trace_hex(trace_id), assessment_id)
    _publish(
        context,
        Assessment(
            assessment_id=row.assessment_id,
            trace_id=row.trace_id,
            experiment_id=row.experiment_id,
            name=row.name,
            value=None,
            source_type=row.source_type,
            source_id=row.source_id,
            rationale=None,
            timestamp_ms=int(time.time() * 1000),
            deleted=True,
            kind=row.kind,
        ),
    )
    return Deleted()


def _expected(expectation: Expectation | None) -> Any:
    assert expectation is not None, "the request has feedback or an expectation"
    return expectation.value


def _experiment_of(context: Context, hex_id: str) -> str:
    """The trace's experiment; 404 for a trace the pipeline has never seen."""
    with context.engine.connect() as connection:
        for column, key in (
            (Trace.experiment_id, Trace.trace_id),
            (OpenTrace.experiment_id, OpenTrace.trace_id),
        ):
            found = connection.scalar(sa.select(column).where(key == hex_id))
            if found is not None:
                return str(found)
    raise not_found(f"trace 'tr-{hex_id}' does not exist (or has not been ingested yet)")


def _stored(context: Context, hex_id: str, assessment_id: str) -> Any:
    with context.engine.connect() as connection:
        row = connection.execute(
            sa.select(AssessmentRow).where(
                AssessmentRow.assessment_id == assessment_id, AssessmentRow.trace_id == hex_id
            )
        ).first()
    if row is None:
        raise not_found(f"assessment {assessment_id!r} of trace 'tr-{hex_id}' does not exist")
    return row


def _publish(context: Context, assessment: Assessment) -> None:
    _send(context, assessment.trace_id, encode_assessment(assessment))


def _send(context: Context, hex_id: str, request: ExportTraceServiceRequest) -> None:
    try:
        context.publisher.publish(hex_id, request)
    except Unavailable as exc:
        raise ApiError(503, TEMPORARILY_UNAVAILABLE, str(exc)) from None


def assessment_out(row: Any) -> AssessmentOut:
    return _shown(
        assessment_id=row.assessment_id,
        trace_id=row.trace_id,
        name=row.name,
        kind=row.kind,
        value=row.value,
        source=Source(source_type=row.source_type, source_id=row.source_id),
        rationale=row.rationale,
        details=row.details,
        overrides=row.overrides,
        valid=row.valid,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
    )


def _out_of(assessment: Assessment, created_ms: int, valid: bool) -> AssessmentOut:
    """What a write will read back as, answered before the aggregator has applied it."""
    return _shown(
        assessment_id=assessment.assessment_id,
        trace_id=assessment.trace_id,
        name=assessment.name,
        kind=assessment.kind,
        value=assessment.value,
        source=Source(source_type=assessment.source_type, source_id=assessment.source_id),
        rationale=assessment.rationale,
        details=assessment.details,
        overrides=assessment.overrides,
        valid=valid,
        created_ms=created_ms,
        updated_ms=assessment.timestamp_ms,
    )


def _shown(
    *,
    assessment_id: str,
    trace_id: str,
    name: str,
    kind: str,
    value: Any,
    source: Source,
    rationale: str | None,
    details: dict[str, str],
    overrides: str | None,
    valid: bool,
    created_ms: int,
    updated_ms: int,
) -> AssessmentOut:
    feedback = expectation = None
    if kind == EXPECTATION:
        expectation = Expectation(value=value)
    else:
        feedback = Feedback(value=value)
    return AssessmentOut(
        assessment_id=assessment_id,
        trace_id=f"tr-{trace_id}",
        assessment_name=name,
        source=source,
        feedback=feedback,
        expectation=expectation,
        rationale=rationale,
        metadata=details,
        overrides=overrides,
        valid=valid,
        create_time=created_ms,
        last_update_time=updated_ms,
    )


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
    )
