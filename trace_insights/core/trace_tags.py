"""Trace tags set or removed after the spans (MLflow's ``set_trace_tag``, ``delete_trace_tag``
and the tags its client sends when a trace ends), and how they travel to the aggregator.

An edit rides the span topic like an assessment (``core.assessments``): a resource with no
spans, in the partition of its trace, so it is ordered with the trace's spans. A trace's tags
are those of its spans with its edits laid over them in offset order (``overlay``), wherever
they are summarized: at finalization, when late spans revise it, and in its history.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.core import storable
from trace_insights.core.routing import EXPERIMENT_ATTRIBUTE, check_experiment_id

CARRIER_ATTRIBUTE = "trace_insights.trace_tag"
# MLflow keeps a trace's user and session as metadata; here they are the tags user, session
MLFLOW_METADATA = {"mlflow.trace.user": "user", "mlflow.trace.session": "session"}
MAX_VALUE_CHARS = 8_000  # MLflow's limit on a trace tag's value


@dataclass(frozen=True)
class TagEdit:
    trace_id: str  # 32 lowercase hex
    experiment_id: str
    key: str
    value: str | None  # None removes the tag


def encode(edits: Iterable[TagEdit]) -> ExportTraceServiceRequest:
    """One record for edits of one trace (a resource each, applied in this order)."""
    request = ExportTraceServiceRequest()
    for edit in edits:
        resource = request.resource_spans.add().resource
        resource.attributes.add(key=EXPERIMENT_ATTRIBUTE).value.string_value = edit.experiment_id
        carried = resource.attributes.add(key=CARRIER_ATTRIBUTE)
        carried.value.string_value = json.dumps(asdict(edit))
    return request


def decode(document: str) -> TagEdit:
    """Raises ValueError for anything that is not a well-formed edit (another producer's)."""
    try:
        fields: dict[str, Any] = json.loads(document)
        edit = TagEdit(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a trace tag edit: {exc}") from None
    if not isinstance(edit.trace_id, str) or len(edit.trace_id) != 32:
        raise ValueError("trace_id must be 32 hex digits")
    check_experiment_id(edit.experiment_id)
    if not isinstance(edit.key, str) or not edit.key:
        raise ValueError("a tag key is a non-empty string")
    if edit.value is not None and not isinstance(edit.value, str):
        raise ValueError("a tag value is a string")
    return TagEdit(
        trace_id=edit.trace_id,
        experiment_id=edit.experiment_id,
        key=storable.key(edit.key),
        value=None if edit.value is None else storable.text(edit.value[:MAX_VALUE_CHARS]),
    )


def overlay(tags: Mapping[str, str], edits: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """The spans' tags with the edits (key, value or None), in offset order, laid over."""
    out = dict(tags)
    for key, value in edits:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
