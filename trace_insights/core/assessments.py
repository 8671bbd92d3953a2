"""Assessments (feedback on a trace) and how they travel to the aggregator.

An assessment rides the span topic, in the partition of its trace, as an OTLP request holding
one resource and no spans: the resource carries the experiment stamp and the assessment as a
JSON attribute. It is therefore ordered with its trace's spans, processed by the same
partition owner, and still valid OTLP for any other reader of the topic.
"""

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trace_insights.core import storable
from trace_insights.core.routing import EXPERIMENT_ATTRIBUTE, check_experiment_id

CARRIER_ATTRIBUTE = "trace_insights.assessment"
SOURCE_TYPES = ("HUMAN", "LLM_JUDGE", "CODE")
FEEDBACK, EXPECTATION = "feedback", "expectation"  # only valid feedback is counted
KINDS = (FEEDBACK, EXPECTATION)
MAX_DEPTH = 32  # of an expectation's value (a list of expected facts, a JSON document)

Value = bool | int | float | str  # feedback; an expectation's value is any JSON
_LIMITS = {"assessment_id": 64, "trace_id": 32, "name": storable.KEY_CHARS}
_TEXTS = ("name", "value", "source_id", "rationale", "details")  # made storable on the way in


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
    kind: str = FEEDBACK
    overrides: str | None = None  # the feedback this one replaces (MLflow's override)
    details: dict[str, str] = field(default_factory=dict)  # MLflow's assessment metadata


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
    if assessment.kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if assessment.deleted:
        if assessment.value is not None:
            raise ValueError("a deletion carries no value")
    elif assessment.kind == EXPECTATION:
        check_json(assessment.value)
    elif not isinstance(assessment.value, bool | int | float | str):
        raise ValueError("a feedback value is a boolean, a number or a string")
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
    if assessment.overrides is not None and not 0 < len(str(assessment.overrides)) <= 64:
        raise ValueError("overrides must be an assessment id of 1-64 characters")
    if not isinstance(assessment.details, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in assessment.details.items()
    ):
        raise ValueError("details must map strings to strings")


def check_json(value: Any, depth: int = 0) -> None:
    """What a JSON column holds: finite numbers, string keys, bounded nesting."""
    if depth > MAX_DEPTH:
        raise ValueError(f"a value nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number must be finite")
    if isinstance(value, list):
        for item in value:
            check_json(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys are strings")
            check_json(item, depth + 1)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise ValueError("not a JSON value")


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
