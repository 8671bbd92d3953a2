"""Topic records (OTLP ``ExportTraceServiceRequest`` bytes) → canonical spans, assessments and
trace tag edits."""

import contextlib
import logging
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from trace_insights.aggregator import metrics
from trace_insights.aggregator.truth.assessments import AssessmentDelivery
from trace_insights.aggregator.truth.writer import Delivery, TagEditDelivery
from trace_insights.bus import Record
from trace_insights.core.assessments import CARRIER_ATTRIBUTE
from trace_insights.core.assessments import decode as decode_assessment
from trace_insights.core.conventions import attributes_of, normalize, value_of
from trace_insights.core.logs import Throttled
from trace_insights.core.routing import (
    DEFAULT_EXPERIMENT,
    EXPERIMENT_ATTRIBUTE,
    check_experiment_id,
)
from trace_insights.core.storable import span_problem
from trace_insights.core.trace_tags import CARRIER_ATTRIBUTE as TAG_CARRIER
from trace_insights.core.trace_tags import decode as decode_edit

log = logging.getLogger(__name__)
_throttled = Throttled(log)  # one line a minute per problem, however many spans have it


@dataclass
class Decoded:
    spans: list[Delivery] = field(default_factory=list)
    assessments: list[AssessmentDelivery] = field(default_factory=list)
    tag_edits: list[TagEditDelivery] = field(default_factory=list)
    undecodable: list[tuple[Record, str]] = field(default_factory=list)  # and why


def deliveries(records: list[Record]) -> Decoded:
    """Spans and assessments of the records. A record that does not parse is returned whole,
    to be kept as a dead letter. Spans no store can hold (``core.storable``), invalid
    experiment stamps and malformed assessments (another producer's) are logged and skipped:
    they can never become valid, and must not stop the partition."""
    decoded = Decoded()
    out, assessments = decoded.spans, decoded.assessments
    for record in records:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(record.value)
        except DecodeError as exc:
            # kept whole as a dead letter; what of it can be read is still applied
            decoded.undecodable.append((record, str(exc) or "not an OTLP request"))
            request = readable_part(record.value)
        for resource_spans in request.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            carried = resource.get(CARRIER_ATTRIBUTE)
            if carried is not None:
                try:
                    assessment = decode_assessment(str(carried))
                except ValueError as exc:
                    log.error(
                        "skipping a malformed assessment",
                        extra={"fields": {"offset": record.offset, "error": str(exc)}},
                    )
                    continue
                assessments.append(AssessmentDelivery(record.offset, assessment))
                continue
            edit = resource.get(TAG_CARRIER)
            if edit is not None:
                try:
                    decoded.tag_edits.append(TagEditDelivery(record.offset, decode_edit(str(edit))))
                except ValueError as exc:
                    log.error(
                        "skipping a malformed trace tag edit",
                        extra={"fields": {"offset": record.offset, "error": str(exc)}},
                    )
                continue
            experiment = _experiment(resource_spans.resource.attributes)
            try:
                check_experiment_id(experiment)
            except ValueError as exc:
                log.error(
                    "skipping spans of an invalid experiment stamp",
                    extra={"fields": {"offset": record.offset, "error": str(exc)}},
                )
                continue
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    problem = span_problem(span)
                    if problem is not None:  # a producer other than the collector wrote it
                        metrics.SPANS_SKIPPED.labels(problem).inc()
                        _throttled.log(
                            logging.ERROR,
                            problem,
                            "skipping a span no store can hold",
                            {"offset": record.offset, "error": problem},
                        )
                        continue
                    out.append(
                        Delivery(
                            record.offset,
                            record.timestamp_ms,
                            normalize(span, resource, experiment),
                        )
                    )
    return decoded


def _experiment(attributes) -> str:
    """The collector's stamp, read raw (not JSON-decoded like other ``mlflow.*`` values)."""
    for attribute in attributes:
        if attribute.key == EXPERIMENT_ATTRIBUTE:
            value = value_of(attribute.value)
            if value not in (None, ""):
                return str(value)
    return DEFAULT_EXPERIMENT


def readable_part(payload: bytes) -> ExportTraceServiceRequest:
    """The resource groups of a request that parse one by one. The collector coalesces several
    senders' requests into one record, a group or more each: one that cannot be read (another
    producer's, too deeply nested, say) must not take the others with it."""
    readable = ExportTraceServiceRequest()
    position = 0
    try:
        while position < len(payload):
            tag, position = _varint(payload, position)
            if tag != _RESOURCE_SPANS_TAG:  # the request's only field: anything else is garbage
                break
            size, position = _varint(payload, position)
            chunk = payload[position : position + size]
            position += size
            with contextlib.suppress(DecodeError):
                readable.resource_spans.append(ResourceSpans.FromString(chunk))
    except IndexError:  # cut short
        pass
    return readable


_RESOURCE_SPANS_TAG = (1 << 3) | 2  # field 1, length-delimited


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
