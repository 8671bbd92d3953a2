"""Assessments (feedback on a trace) and how they travel to the aggregator.

An assessment rides the span topic, in the partition of its trace, as an OTLP request holding
one resource and no spans: the resource carries the experiment stamp and the assessment as a
JSON attribute. It is therefore ordered with its trace's spans, processed by the same
partition owner, and still valid OTLP for any other reader of the topic.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.core import storable
from trace_insights.core.routing import EXPERIMENT_ATTRIBUTE, check_experiment_id

CARRIER_ATTRIBUTE = "trace_insights.assessment"
SOURCE_TYPES = ("HUMAN", "LLM_JUDGE", "CODE")

Value = bool | int | float | str
_LIMITS = {"assessment_id": 64, "trace_id": 32, "name": storable.KEY_CHARS}
_TEXTS = ("name", "value", "source_id", "rationale")  # made storable on the way in


@dataclass(frozen=True)
class Assessment:
    assessment_id: str
    trace_id: str  # 32 lowercase hex
    experiment_id: str
    name: str
    value: Value | None  # None only when deleted
    source_type: str
    source_id: str | None
    rationale: str | None
    timestamp_ms: int
    deleted: bool = False


def encode(assessment: Assessment) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add().resource
    resource.attributes.add(key=EXPERIMENT_ATTRIBUTE).value.string_value = assessment.experiment_id
    resource.attributes.add(key=CARRIER_ATTRIBUTE).value.string_value = json.dumps(
        asdict(assessment)
    )
    return request


def decode(document: str) -> Assessment:
    """Raises ValueError for anything that is not a well-formed assessment."""
    try:
        fields: dict[str, Any] = json.loads(document)
        assessment = Assessment(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not an assessment: {exc}") from None
    if assessment.deleted:
        if assessment.value is not None:
            raise ValueError("a deletion carries no value")
    elif not isinstance(assessment.value, bool | int | float | str):
        raise ValueError("an assessment value is a boolean, a number or a string")
    _check_columns(assessment)
    return replace(assessment, **{f: storable.deep(getattr(assessment, f)) for f in _TEXTS})


def _check_columns(assessment: Assessment) -> None:
    """What the columns of another producer's assessment could not hold."""
    for name, limit in _LIMITS.items():
        value = getattr(assessment, name)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise ValueError(f"{name} must be a string of 1-{limit} characters")
    check_experiment_id(assessment.experiment_id)
    if assessment.source_type not in SOURCE_TYPES:
        raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}")


def value_key(value: Value) -> str:
    """The value as counted and as a dimension: JSON, so 'true' the string and true differ."""
    return json.dumps(value)


def value_type(values: list[Value]) -> str:
    """MLflow's detection over a name's distinct values: all "yes"/"no" → pass-fail, all
    booleans → boolean, all numbers → numeric, else string."""
    if values and all(isinstance(v, str) and v.lower() in ("yes", "no") for v in values):
        return "pass-fail"
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "numeric"
    return "string"


def by_name(pairs: Iterable[Sequence[Any]]) -> dict[str, list[Value]]:
    """A trace's current assessments, [name, value] pairs, as name → values: the shape filters
    read on the trace row (a name may be given by several sources)."""
    values: dict[str, list[Value]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def is_failure(value: Value) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "no")
