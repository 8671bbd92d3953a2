"""Assessments of a trace (MLflow's REST shapes): feedback and expectations, written through the
span topic — the aggregator stores them and moves the aggregates — so a new assessment is
readable here once the aggregator has applied it (typically well under a second)."""

import time
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request

from trace_insights.api.context import Context
from trace_insights.api.errors import invalid, not_found
from trace_insights.api.mlflow.changes import experiment_of, send, trace_hex
from trace_insights.api.mlflow.schemas import (
    AssessmentOut,
    AssessmentResponse,
    CreateAssessment,
    Deleted,
    Expectation,
    Feedback,
    NewAssessment,
    Source,
    UpdateAssessment,
)
from trace_insights.core.assessments import EXPECTATION, FEEDBACK, Assessment
from trace_insights.core.assessments import encode as encode_assessment
from trace_insights.truth.models import Assessment as AssessmentRow

router = APIRouter(prefix="/api/3.0/mlflow/traces")


@router.post("/{trace_id}/assessments", response_model=AssessmentResponse)
def create_assessment(
    trace_id: str, body: CreateAssessment, request: Request
) -> AssessmentResponse:
    context: Context = request.app.state.context
    hex_id = trace_hex(trace_id)
    experiment = experiment_of(context, hex_id)
    new = body.assessment
    if new.overrides is not None:
        replaced = _stored(context, hex_id, new.overrides)
        if replaced.kind != FEEDBACK:
            raise invalid(
                f"assessment {new.overrides!r} is an expectation; only feedback is overridden"
            )
    assessment = new_assessment(new, hex_id, experiment)
    publish(context, assessment)
    return AssessmentResponse(
        assessment=_out_of(assessment, created_ms=assessment.timestamp_ms, valid=True)
    )


def new_assessment(new: NewAssessment, hex_id: str, experiment: str) -> Assessment:
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
    publish(context, changed)
    return AssessmentResponse(
        assessment=_out_of(changed, created_ms=row.created_ms, valid=row.valid)
    )


@router.delete("/{trace_id}/assessments/{assessment_id}", response_model=Deleted)
def delete_assessment(trace_id: str, assessment_id: str, request: Request) -> Deleted:
    context: Context = request.app.state.context
    row = _stored(context, trace_hex(trace_id), assessment_id)
    publish(
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


def publish(context: Context, assessment: Assessment) -> None:
    send(context, assessment.trace_id, encode_assessment(assessment))


def assessment_out(row: Any) -> AssessmentOut:
    """An ``assessments`` row (or one not stored yet) in MLflow's shape."""
    value = row.value
    return AssessmentOut(
        assessment_id=row.assessment_id,
        trace_id=f"tr-{row.trace_id}",
        assessment_name=row.name,
        source=Source(source_type=row.source_type, source_id=row.source_id),
        feedback=Feedback(value=value) if row.kind == FEEDBACK else None,
        expectation=Expectation(value=value) if row.kind == EXPECTATION else None,
        rationale=row.rationale,
        metadata=row.details,
        overrides=row.overrides,
        valid=row.valid,
        create_time=row.created_ms,
        last_update_time=row.updated_ms,
    )


def _out_of(assessment: Assessment, created_ms: int, valid: bool) -> AssessmentOut:
    """What a write will read back as, answered before the aggregator has applied it."""
    return assessment_out(
        AssessmentRow(
            assessment_id=assessment.assessment_id,
            trace_id=assessment.trace_id,
            experiment_id=assessment.experiment_id,
            name=assessment.name,
            value=assessment.value,
            source_type=assessment.source_type,
            source_id=assessment.source_id,
            rationale=assessment.rationale,
            created_ms=created_ms,
            updated_ms=assessment.timestamp_ms,
            kind=assessment.kind,
            valid=valid,
            overrides=assessment.overrides,
            details=assessment.details,
        )
    )
