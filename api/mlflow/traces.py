"""Traces and their assessments (MLflow's REST shapes). Assessments are written through the
span topic — the aggregator stores them and moves the aggregates — so a new assessment is
readable here once the aggregator has applied it (typically well under a second)."""

import re
import time
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.context import Context
from trace_insights.api.errors import TEMPORARILY_UNAVAILABLE, ApiError, invalid, not_found
from trace_insights.api.mlflow.schemas import (
    SPANS_LOCATION,
    AssessmentOut,
    AssessmentResponse,
    CreateAssessment,
    Deleted,
    Feedback,
    GetTraceResponse,
    Source,
    SpanOut,
    StartedTrace,
    StartedTraceInfo,
    StartTrace,
    TokenUsage,
    TraceData,
    TraceInfo,
    TraceOut,
    UpdateAssessment,
)
from trace_insights.api.publisher import Unavailable
from trace_insights.core.assessments import Assessment
from trace_insights.core.records import IN_PROGRESS, trace_times
from trace_insights.truth.models import Assessment as AssessmentRow
from trace_insights.truth.models import OpenTrace, Span, Trace

router = APIRouter(prefix="/api/3.0/mlflow/traces")
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
    OTLP: the spans are the trace here, so the info is answered back, saying the spans are in
    this store (``mlflow.trace.spansLocation``), so the client does not upload them elsewhere."""
    info = dict(body.trace.trace_info)
    info["tags"] = {**(info.get("tags") or {}), SPANS_LOCATION: "TRACKING_STORE"}
    return StartedTrace(trace=StartedTraceInfo(trace_info=info))


@router.get("/{trace_id}", response_model=GetTraceResponse)
def get_trace(trace_id: str, request: Request) -> GetTraceResponse:
    context: Context = request.app.state.context
    hex_id = trace_hex(trace_id)
    with context.engine.connect() as connection:
        trace = connection.execute(sa.select(Trace).where(Trace.trace_id == hex_id)).first()
        spans = list(
            connection.execute(
                sa.select(Span).where(Span.trace_id == hex_id).order_by(Span.start_time_ns)
            )
        )
        assessments = list(
            connection.execute(
                sa.select(AssessmentRow)
                .where(AssessmentRow.trace_id == hex_id)
                .order_by(AssessmentRow.created_ms)
            )
        )
    if trace is None and not spans:
        raise not_found(f"trace {trace_id!r} does not exist")
    if trace is not None:
        info = dict(
            experiment_id=trace.experiment_id,
            request_time=trace.timestamp_ms,
            execution_duration=trace.execution_time_ms,
            state=trace.status,
            name=trace.root_name,
            token_usage=TokenUsage(
                input_tokens=trace.input_tokens,
                output_tokens=trace.output_tokens,
                total_tokens=trace.total_tokens,
            ),
            tags=trace.tags,
        )
    else:  # still being assembled
        request_time, execution_duration = trace_times(
            min(s.start_time_ns for s in spans), max(s.end_time_ns for s in spans)
        )
        info = dict(
            experiment_id=spans[0].experiment_id,
            request_time=request_time,
            execution_duration=execution_duration,
            state=IN_PROGRESS,
            name=next((s.name for s in spans if s.parent_span_id is None), None),
            token_usage=TokenUsage(
                input_tokens=(tokens_in := sum(s.input_tokens or 0 for s in spans)),
                output_tokens=(tokens_out := sum(s.output_tokens or 0 for s in spans)),
                total_tokens=tokens_in + tokens_out,
            ),
            tags=spans[0].trace_tags,
        )
    return GetTraceResponse(
        trace=TraceOut(
            trace_info=TraceInfo(
                trace_id=f"tr-{hex_id}",
                assessments=[assessment_out(a) for a in assessments],
                **info,
            ),
            data=TraceData(spans=[_span(s) for s in spans]),
        )
    )


@router.post("/{trace_id}/assessments", response_model=AssessmentResponse)
def create_assessment(
    trace_id: str, body: CreateAssessment, request: Request
) -> AssessmentResponse:
    context: Context = request.app.state.context
    hex_id = trace_hex(trace_id)
    experiment = _experiment_of(context, hex_id)
    now = int(time.time() * 1000)
    new = body.assessment
    assessment = Assessment(
        assessment_id=f"a-{uuid.uuid4().hex}",
        trace_id=hex_id,
        experiment_id=experiment,
        name=new.assessment_name,
        value=new.feedback.value,
        source_type=new.source.source_type,
        source_id=new.source.source_id,
        rationale=new.rationale,
        timestamp_ms=now,
    )
    _publish(context, assessment)
    return AssessmentResponse(assessment=_out_of(assessment, created_ms=now))


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
    changed = Assessment(
        assessment_id=row.assessment_id,
        trace_id=row.trace_id,
        experiment_id=row.experiment_id,
        name=row.name,
        value=body.assessment.feedback.value,
        source_type=row.source_type,
        source_id=row.source_id,
        rationale=body.assessment.rationale,
        timestamp_ms=int(time.time() * 1000),
    )
    _publish(context, changed)
    return AssessmentResponse(assessment=_out_of(changed, created_ms=row.created_ms))


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
        ),
    )
    return Deleted()


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
    try:
        context.publisher.publish(assessment)
    except Unavailable as exc:
        raise ApiError(503, TEMPORARILY_UNAVAILABLE, str(exc)) from None


def assessment_out(row: Any) -> AssessmentOut:
    return AssessmentOut(
        assessment_id=row.assessment_id,
        trace_id=f"tr-{row.trace_id}",
        assessment_name=row.name,
        source=Source(source_type=row.source_type, source_id=row.source_id),
        feedback=Feedback(value=row.value),
        rationale=row.rationale,
        create_time=row.created_ms,
        last_update_time=row.updated_ms,
    )


def _out_of(assessment: Assessment, created_ms: int) -> AssessmentOut:
    assert assessment.value is not None, "a deletion is never shown"
    return AssessmentOut(
        assessment_id=assessment.assessment_id,
        trace_id=f"tr-{assessment.trace_id}",
        assessment_name=assessment.name,
        source=Source(source_type=assessment.source_type, source_id=assessment.source_id),
        feedback=Feedback(value=assessment.value),
        rationale=assessment.rationale,
        create_time=created_ms,
        last_update_time=assessment.timestamp_ms,
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
