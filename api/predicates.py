"""API dimensions as SQLAlchemy predicates over finalized traces: how the source of truth
answers what the stream does not count (a latency threshold off the stream's list, say)."""

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from api.dimensions import Requested
from trace_insights.core.assessments import value_key
from trace_insights.truth.models import Assessment, Span, Trace, TraceTag

_COMPARE = {
    ">": lambda column, t: column > t,
    ">=": lambda column, t: column >= t,
    "<": lambda column, t: column < t,
    "<=": lambda column, t: column <= t,
}


def predicate(requested: Requested, dialect: str) -> ColumnElement[bool]:
    name, parameters = requested.name, requested.parameters
    if name == "status":
        return Trace.status == parameters["value"]
    if name == "span.type":
        return _has_span(Span.span_type == parameters["value"])
    if name == "model":
        return _has_span(Span.model == parameters["value"])
    if name.startswith("tags."):
        return sa.exists().where(
            TraceTag.trace_id == Trace.trace_id,
            TraceTag.key == name[5:],
            TraceTag.value == parameters["value"],
        )
    if name.startswith("tools."):
        used = _has_span(Span.tool_name == name[6:])
        error = _has_span(Span.tool_name == name[6:], Span.status == "ERROR")
        return {"used": used, "error": error, "success": sa.and_(used, sa.not_(error))}[
            parameters["value"]
        ]
    operator, threshold = parameters.get("operator", ""), float(parameters.get("threshold", 0))
    if name == "latency":
        return _COMPARE[operator](Trace.execution_time_ms, threshold)
    if name.startswith("span_count."):
        spans = (
            sa.select(sa.func.count())
            .where(Span.trace_id == Trace.trace_id, Span.span_type == name[11:])
            .scalar_subquery()
        )
        return _COMPARE[operator](spans, threshold)
    assessed = [Assessment.trace_id == Trace.trace_id, Assessment.name == name[11:]]
    if "operator" in parameters:
        number = sa.case(
            (_is_number(dialect), sa.cast(sa.cast(Assessment.value, sa.Text), sa.Float))
        )
        return sa.exists().where(*assessed, _COMPARE[operator](number, threshold))
    return sa.exists().where(*assessed, _value_text(parameters["value"]))


def _has_span(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return sa.exists().where(Span.trace_id == Trace.trace_id, *conditions)


def _is_number(dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return sa.func.jsonb_typeof(Assessment.value) == "number"
    return sa.func.json_type(Assessment.value).in_(("integer", "real"))


def _value_text(shown: str) -> ColumnElement[bool]:
    """A dimension value as shown (strings bare, others JSON) against the stored JSON text:
    ``yes`` matches the string "yes"; ``true`` matches true or the string "true"."""
    text = sa.cast(Assessment.value, sa.Text)
    return sa.or_(text == value_key(shown), text == shown)
