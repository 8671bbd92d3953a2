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
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from trace_insights.core.routing import (
    DEFAULT_EXPERIMENT,
    EXPERIMENT_ATTRIBUTE,
    check_experiment_id,
    partition_for,
)
from trace_insights.core.storable import span_problem

# Room for the tags and length prefixes of the ResourceSpans and ScopeSpans around the spans.
_FRAMING_BYTES = 12


@dataclass(frozen=True)
class Batch:
    """One Kafka message: key is a trace id of the batch, so it hashes to ``partition``."""

    partition: int
    key: bytes
    payload: bytes
    span_count: int


class Run:
    """Accepted spans of one partition under one resource and scope, in arrival order.

    ``spans`` holds each span already encoded as a ``ScopeSpans.spans`` field; ``key`` is the
    first span's trace id.
    """

    __slots__ = ("framing", "key", "resource", "scope", "size", "spans")

    def __init__(self, resource: "_Frame", scope: "_Frame", key: bytes) -> None:
        self.resource = resource
        self.scope = scope
        self.key = key
        self.spans: list[bytes] = []
        self.framing = resource.size + scope.size + 2 * _FRAMING_BYTES
        self.size = self.framing  # an upper bound of what the run adds to a message


@dataclass
class Regrouped:
    routed: dict[int, list[Run]] = field(default_factory=dict)
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
    """Validate and route every span; ``experiment_id`` (the header) overrides the resources'.

    Spans that could never fit in a message are rejected here, so ``assemble`` always succeeds.
    """
    result = Regrouped()
    routed = result.routed
    rejected = result.rejected
    partition_of: dict[bytes, int] = {}
    for resource_spans in request.resource_spans:
        resource_frame, problem = _resource_frame(resource_spans, experiment_id)
        for scope_spans in resource_spans.scope_spans:
            scope_frame = _Frame(
                scope_spans.scope.SerializeToString() if scope_spans.HasField("scope") else None,
                scope_spans.schema_url,
            )
            room = max_message_bytes - resource_frame.size - scope_frame.size - 2 * _FRAMING_BYTES
            runs: dict[int, Run] = {}
            for span in scope_spans.spans:
                reason = problem or span_problem(span)
                if reason is None:
                    body = span.SerializeToString()
                    encoded = _SPAN_TAG + _varint(len(body)) + body
                    if len(encoded) > room:
                        reason = f"span larger than the {max_message_bytes}-byte message limit"
                if reason is not None:
                    rejected[reason] += 1
                    continue
                trace_id = span.trace_id
                partition = partition_of.get(trace_id)
                if partition is None:
                    partition = partition_of[trace_id] = partition_for(trace_id, partitions)
                run = runs.get(partition)
                if run is None:
                    run = runs[partition] = Run(resource_frame, scope_frame, trace_id)
                    routed.setdefault(partition, []).append(run)
                run.spans.append(encoded)
                run.size += len(encoded)
            result.accepted += sum(len(run.spans) for run in runs.values())
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
            value.string_value
            if kind == "string_value"
            else str(value.int_value)
            if kind == "int_value"
            else DEFAULT_EXPERIMENT
        )
    problem = None
    try:
        check_experiment_id(experiment_id)
    except ValueError as exc:
        problem = f"resource attribute {EXPERIMENT_ATTRIBUTE}: {exc}"
    stamped.value.Clear()
    stamped.value.string_value = experiment_id
    return _Frame(resource.SerializeToString(), resource_spans.schema_url), problem


def assemble(partition: int, runs: list[Run], limit: int) -> list[Batch]:
    """Messages of at most ``limit`` bytes holding the runs' spans in order."""
    batches: list[Batch] = []
    parts: list[bytes] = []
    size = count = 0
    key = b""
    for run in runs:
        chunks = [run.spans] if run.size <= limit else _split(run.spans, limit - run.framing)
        for spans in chunks:
            chunk_size = run.size if len(chunks) == 1 else run.framing + sum(map(len, spans))
            if parts and size + chunk_size > limit:
                batches.append(Batch(partition, key, b"".join(parts), count))
                parts, size, count = [], 0, 0
            if not parts:
                key = run.key
            scope = _field(2, run.scope.head + b"".join(spans) + run.scope.tail)
            parts.append(_field(1, run.resource.head + scope + run.resource.tail))
            size += chunk_size
            count += len(spans)
    if parts:
        batches.append(Batch(partition, key, b"".join(parts), count))
    return batches


def _split(spans: list[bytes], room: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    used = 0
    for encoded in spans:
        if chunks[-1] and used + len(encoded) > room:
            chunks.append([])
            used = 0
        chunks[-1].append(encoded)
        used += len(encoded)
    return chunks


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    if value < len(_SMALL_VARINTS):
        return _SMALL_VARINTS[value]
    return _encode_varint(value)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [_encode_varint(n) for n in range(1 << 14)]
_SPAN_TAG = _varint((2 << 3) | 2)
