"""Validate spans and regroup an export request into per-partition Kafka messages.

Each message is an ``ExportTraceServiceRequest`` (the OTel Collector's ``otlp_proto`` encoding)
holding only traces of one partition, many spans per message, below the message size limit.
Messages are assembled at the wire level from each span's serialized bytes: one serialization
per span, exact sizes, and resource/scope framing repeated only where a group is split.
"""

from collections import Counter
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

from trace_insights.core.routing import (
    DEFAULT_EXPERIMENT,
    EXPERIMENT_ATTRIBUTE,
    check_experiment_id,
    partition_for,
)

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
# Room for the tags and length prefixes of the ResourceSpans and ScopeSpans around the spans.
_FRAMING_BYTES = 12


@dataclass(frozen=True)
class Batch:
    """One Kafka message: key is a trace id of the batch, so it hashes to ``partition``."""

    partition: int
    key: bytes
    payload: bytes
    span_count: int


@dataclass
class Regrouped:
    batches: list[Batch] = field(default_factory=list)
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def error_message(self) -> str:
        """Names every reason, so the sender can tell what to fix."""
        total = self.accepted + self.rejected_count
        reasons = "; ".join(f"{count} x {reason}" for reason, count in self.rejected.items())
        return f"rejected {self.rejected_count} of {total} spans: {reasons}"


def regroup(
    request: ExportTraceServiceRequest,
    *,
    partitions: int,
    max_message_bytes: int,
    experiment_id: str | None = None,
) -> Regrouped:
    """``experiment_id`` (from the request header) overrides the resources' own attribute."""
    result = Regrouped()
    # partition → [(resource frame, scope frame, encoded span, trace id)], in arrival order
    routed: dict[int, list[tuple[_Frame, _Frame, bytes, bytes]]] = {}
    partition_of: dict[bytes, int] = {}
    for resource_spans in request.resource_spans:
        resource_frame, problem = _resource_frame(resource_spans, experiment_id)
        for scope_spans in resource_spans.scope_spans:
            scope_frame = _Frame(
                scope_spans.scope.SerializeToString() if scope_spans.HasField("scope") else None,
                scope_spans.schema_url,
            )
            overhead = resource_frame.size + scope_frame.size + 2 * _FRAMING_BYTES
            for span in scope_spans.spans:
                reason = problem or _span_problem(span)
                if reason is None:
                    encoded = _field(2, span.SerializeToString())
                    if len(encoded) + overhead > max_message_bytes:
                        reason = f"span larger than the {max_message_bytes}-byte message limit"
                if reason is not None:
                    result.rejected[reason] += 1
                    continue
                trace_id = span.trace_id
                partition = partition_of.get(trace_id)
                if partition is None:
                    partition = partition_of[trace_id] = partition_for(trace_id, partitions)
                routed.setdefault(partition, []).append(
                    (resource_frame, scope_frame, encoded, trace_id)
                )
                result.accepted += 1
    for partition, items in routed.items():
        result.batches.extend(_assemble(partition, items, max_message_bytes))
    return result


class _Frame:
    """The serialized head (resource or scope) and schema URL that frame a group of spans."""

    __slots__ = ("head", "size", "tail")

    def __init__(self, head: bytes | None, schema_url: str) -> None:
        self.head = _field(1, head) if head is not None else b""
        self.tail = _field(3, schema_url.encode()) if schema_url else b""
        self.size = len(self.head) + len(self.tail)


def _resource_frame(
    resource_spans: ResourceSpans, experiment_id: str | None
) -> tuple[_Frame, str | None]:
    """Stamp the experiment into the resource so every Kafka message is self-contained."""
    resource = Resource()
    resource.CopyFrom(resource_spans.resource)
    stamped = None
    for attribute in resource.attributes:
        if attribute.key == EXPERIMENT_ATTRIBUTE:
            stamped = attribute
    if stamped is None:
        stamped = resource.attributes.add(key=EXPERIMENT_ATTRIBUTE)
    if experiment_id is None:
        value = stamped.value
        kind = value.WhichOneof("value")
        experiment_id = (
            value.string_value if kind == "string_value"
            else str(value.int_value) if kind == "int_value"
            else DEFAULT_EXPERIMENT
        )  # fmt: skip
    problem = None
    try:
        check_experiment_id(experiment_id)
    except ValueError as exc:
        problem = f"resource attribute {EXPERIMENT_ATTRIBUTE}: {exc}"
    stamped.value.Clear()
    stamped.value.string_value = experiment_id
    return _Frame(resource.SerializeToString(), resource_spans.schema_url), problem


def _span_problem(span: Span) -> str | None:
    trace_id = span.trace_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        return "invalid trace_id (must be 16 bytes, not all zero)"
    span_id = span.span_id
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        return "invalid span_id (must be 8 bytes, not all zero)"
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        return "invalid parent_span_id (must be empty or 8 bytes)"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    return None


def _assemble(
    partition: int, items: list[tuple[_Frame, _Frame, bytes, bytes]], limit: int
) -> list[Batch]:
    batches: list[Batch] = []
    current: list[tuple[_Frame, _Frame, bytes, bytes]] = []
    size = 0
    last_resource: _Frame | None = None
    last_scope: _Frame | None = None
    for item in items:
        resource, scope, encoded, _ = item
        added = len(encoded)
        if resource is not last_resource:
            added += resource.size + scope.size + 2 * _FRAMING_BYTES
        elif scope is not last_scope:
            added += scope.size + _FRAMING_BYTES
        if current and size + added > limit:
            batches.append(_encode_batch(partition, current))
            current, size = [], 0
            added = len(encoded) + resource.size + scope.size + 2 * _FRAMING_BYTES
        current.append(item)
        size += added
        last_resource, last_scope = resource, scope
    if current:
        batches.append(_encode_batch(partition, current))
    return batches


def _encode_batch(partition: int, items: list[tuple[_Frame, _Frame, bytes, bytes]]) -> Batch:
    message: list[bytes] = []
    resource: _Frame | None = None
    scopes: list[bytes] = []
    scope: _Frame | None = None
    spans: list[bytes] = []

    def close_scope() -> None:
        if scope is not None:
            scopes.append(_field(2, scope.head + b"".join(spans) + scope.tail))

    def close_resource() -> None:
        if resource is not None:
            message.append(_field(1, resource.head + b"".join(scopes) + resource.tail))

    for item_resource, item_scope, encoded, _ in items:
        if item_resource is not resource:
            close_scope()
            close_resource()
            resource, scope, scopes, spans = item_resource, item_scope, [], []
        elif item_scope is not scope:
            close_scope()
            scope, spans = item_scope, []
        spans.append(encoded)
    close_scope()
    close_resource()
    return Batch(partition, items[0][3], b"".join(message), len(items))


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
