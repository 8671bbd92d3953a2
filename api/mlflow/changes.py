"""What the API changes of a trace (assessments, tag edits) and how it is sent: to the span
topic, in the trace's partition, through the publisher; the aggregator applies it."""

import re

import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.api.context import Context
from trace_insights.api.errors import TEMPORARILY_UNAVAILABLE, ApiError, invalid, not_found
from trace_insights.api.publisher import Unavailable
from trace_insights.truth.models import OpenTrace, Trace

_TRACE_ID = re.compile(r"^(?:tr-)?([0-9a-fA-F]{32})$")


def trace_hex(trace_id: str) -> str:
    """``tr-<32 hex>`` or bare hex → 32 lowercase hex; 400 otherwise."""
    match = _TRACE_ID.match(trace_id)
    if match is None:
        raise invalid(f"trace id {trace_id!r} is not 'tr-' followed by 32 hex digits")
    return match.group(1).lower()


def experiment_of(context: Context, hex_id: str) -> str:
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


def send(context: Context, hex_id: str, request: ExportTraceServiceRequest) -> None:
    try:
        context.publisher.publish(hex_id, request)
    except Unavailable as exc:
        raise ApiError(503, TEMPORARILY_UNAVAILABLE, str(exc)) from None
