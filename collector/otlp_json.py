"""OTLP/JSON → protobuf, following the OTLP rules rather than protobuf's generic JSON mapping.

``google.protobuf.json_format`` reads trace and span ids as base64 (OTLP sends hex) and costs
~300 µs per span; this walks the decoded JSON once and fills the protobuf messages directly.
Unknown fields are ignored, as OTLP requires; both lowerCamelCase and the original snake_case
names are accepted, as the OTel Collector does.
"""

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from trace_insights.core import storable

Json = Any


class OtlpJsonError(ValueError):
    """The body is not valid OTLP/JSON; the message names the offending field path."""


# Protobuf parses messages nested at most 100 deep (the request is level 1): JSON can nest an
# attribute's value deeper, and the spans of such a request could not be read back from Kafka.
MAX_MESSAGE_DEPTH = 100


def decode_request(body: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OtlpJsonError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise OtlpJsonError("body is JSON nested too deeply to read") from None
    request = ExportTraceServiceRequest()
    resource_spans = _fields(document, "$", _REQUEST).get("resourceSpans", [])
    for i, item in enumerate(_list(resource_spans, "$.resourceSpans")):
        _resource_spans(item, f"$.resourceSpans[{i}]", request.resource_spans.add())
    return request


def encode_response(response: ExportTraceServiceResponse) -> bytes:
    if not response.HasField("partial_success"):
        return b"{}"
    partial = response.partial_success
    return json.dumps(
        {
            "partialSuccess": {
                "rejectedSpans": str(partial.rejected_spans),
                "errorMessage": partial.error_message,
            }
        }
    ).encode()


def _aliases(*names: str) -> dict[str, str]:
    """Map lowerCamelCase names and their snake_case originals to the lowerCamelCase name."""
    table = {}
    for name in names:
        table[name] = name
        table["".join("_" + c.lower() if c.isupper() else c for c in name)] = name
    return table


_REQUEST = _aliases("resourceSpans")
_RESOURCE_SPANS = _aliases("resource", "scopeSpans", "schemaUrl")
_RESOURCE = _aliases("attributes", "droppedAttributesCount")
_SCOPE_SPANS = _aliases("scope", "spans", "schemaUrl")
_SCOPE = _aliases("name", "version", "attributes", "droppedAttributesCount")
_SPAN = _aliases(
    "traceId",
    "spanId",
    "traceState",
    "parentSpanId",
    "flags",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "droppedAttributesCount",
    "events",
    "droppedEventsCount",
    "links",
    "droppedLinksCount",
    "status",
)
_EVENT = _aliases("timeUnixNano", "name", "attributes", "droppedAttributesCount")
_LINK = _aliases("traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags")
_STATUS = _aliases("message", "code")
_KEY_VALUE = _aliases("key", "value")
_ANY_VALUE = _aliases(
    "stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"
)
_VALUES = _aliases("values")


def _fields(obj: Json, path: str, aliases: dict[str, str]) -> dict[str, Json]:
    if not isinstance(obj, dict):
        raise OtlpJsonError(f"{path}: expected an object, got {type(obj).__name__}")
    return {
        aliases[key]: value for key, value in obj.items() if key in aliases and value is not None
    }


def _list(value: Json, path: str) -> list[Json]:
    if not isinstance(value, list):
        raise OtlpJsonError(f"{path}: expected an array, got {type(value).__name__}")
    return value


def _string(value: Json, path: str) -> str:
    """Storable text (a lone surrogate, which JSON can escape, could not even be encoded)."""
    if not isinstance(value, str):
        raise OtlpJsonError(f"{path}: expected a string, got {type(value).__name__}")
    return storable.text(value)


def _int(value: Json, path: str, bits: int = 64, signed: bool = False) -> int:
    """Integers arrive as numbers or, for 64-bit fields, as decimal strings."""
    if isinstance(value, bool):
        raise OtlpJsonError(f"{path}: expected an integer, got a boolean")
    if isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            raise OtlpJsonError(f"{path}: {value!r} is not a decimal integer") from None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise OtlpJsonError(f"{path}: expected an integer, got {type(value).__name__}")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not low <= number <= high:
        raise OtlpJsonError(f"{path}: {number} is out of range for a {bits}-bit integer")
    return number


def _hex_id(value: Json, path: str) -> bytes:
    """Ids are hex in OTLP/JSON; their length is checked per span by the validator."""
    text = _string(value, path)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise OtlpJsonError(f"{path}: {text!r} is not a hex string") from None


def _enum(value: Json, path: str, names: Mapping[str, int]) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _int(value, path, bits=32, signed=True)


_KIND_NAMES = {name: number for name, number in Span.SpanKind.items()}
_STATUS_NAMES = {name: number for name, number in Status.StatusCode.items()}


def _resource_spans(obj: Json, path: str, out: ResourceSpans) -> None:
    fields = _fields(obj, path, _RESOURCE_SPANS)
    if "resource" in fields:
        out.resource.SetInParent()
        _resource(fields["resource"], f"{path}.resource", out.resource)
    for i, item in enumerate(_list(fields.get("scopeSpans", []), f"{path}.scopeSpans")):
        _scope_spans(item, f"{path}.scopeSpans[{i}]", out.scope_spans.add())
    if "schemaUrl" in fields:
        out.schema_url = _string(fields["schemaUrl"], f"{path}.schemaUrl")


def _resource(obj: Json, path: str, out: Resource) -> None:
    fields = _fields(obj, path, _RESOURCE)
    _attributes(fields, path, out, depth=3)


def _scope_spans(obj: Json, path: str, out: ScopeSpans) -> None:
    fields = _fields(obj, path, _SCOPE_SPANS)
    if "scope" in fields:
        out.scope.SetInParent()
        _scope(fields["scope"], f"{path}.scope", out.scope)
    for i, item in enumerate(_list(fields.get("spans", []), f"{path}.spans")):
        _span(item, f"{path}.spans[{i}]", out.spans.add())
    if "schemaUrl" in fields:
        out.schema_url = _string(fields["schemaUrl"], f"{path}.schemaUrl")


def _scope(obj: Json, path: str, out: InstrumentationScope) -> None:
    fields = _fields(obj, path, _SCOPE)
    if "name" in fields:
        out.name = _string(fields["name"], f"{path}.name")
    if "version" in fields:
        out.version = _string(fields["version"], f"{path}.version")
    _attributes(fields, path, out, depth=4)


def _span(obj: Json, path: str, out: Span) -> None:
    fields = _fields(obj, path, _SPAN)
    for name, setter in _SPAN_SETTERS.items():
        if name in fields:
            setter(out, fields[name], f"{path}.{name}")
    _attributes(fields, path, out, depth=4)
    for i, item in enumerate(_list(fields.get("events", []), f"{path}.events")):
        _event(item, f"{path}.events[{i}]", out.events.add())
    for i, item in enumerate(_list(fields.get("links", []), f"{path}.links")):
        _link(item, f"{path}.links[{i}]", out.links.add())
    if "status" in fields:
        status = _fields(fields["status"], f"{path}.status", _STATUS)
        out.status.SetInParent()
        if "message" in status:
            out.status.message = _string(status["message"], f"{path}.status.message")
        if "code" in status:
            code = _enum(status["code"], f"{path}.status.code", _STATUS_NAMES)
            out.status.code = Status.StatusCode.ValueType(code)


def _set(attr: str, convert: Callable[[Json, str], Any]) -> Callable[[Any, Json, str], None]:
    def setter(out: Any, value: Json, path: str) -> None:
        setattr(out, attr, convert(value, path))

    return setter


_SPAN_SETTERS: dict[str, Callable[[Span, Json, str], None]] = {
    "traceId": _set("trace_id", _hex_id),
    "spanId": _set("span_id", _hex_id),
    "parentSpanId": _set("parent_span_id", _hex_id),
    "traceState": _set("trace_state", _string),
    "flags": _set("flags", lambda v, p: _int(v, p, 32)),
    "name": _set("name", _string),
    "kind": _set("kind", lambda v, p: _enum(v, p, _KIND_NAMES)),
    "startTimeUnixNano": _set("start_time_unix_nano", _int),
    "endTimeUnixNano": _set("end_time_unix_nano", _int),
    "droppedEventsCount": _set("dropped_events_count", lambda v, p: _int(v, p, 32)),
    "droppedLinksCount": _set("dropped_links_count", lambda v, p: _int(v, p, 32)),
}


def _event(obj: Json, path: str, out: Span.Event) -> None:
    fields = _fields(obj, path, _EVENT)
    if "timeUnixNano" in fields:
        out.time_unix_nano = _int(fields["timeUnixNano"], f"{path}.timeUnixNano")
    if "name" in fields:
        out.name = _string(fields["name"], f"{path}.name")
    _attributes(fields, path, out, depth=5)


def _link(obj: Json, path: str, out: Span.Link) -> None:
    fields = _fields(obj, path, _LINK)
    if "traceId" in fields:
        out.trace_id = _hex_id(fields["traceId"], f"{path}.traceId")
    if "spanId" in fields:
        out.span_id = _hex_id(fields["spanId"], f"{path}.spanId")
    if "traceState" in fields:
        out.trace_state = _string(fields["traceState"], f"{path}.traceState")
    if "flags" in fields:
        out.flags = _int(fields["flags"], f"{path}.flags", 32)
    _attributes(fields, path, out, depth=5)


def _attributes(fields: dict[str, Json], path: str, out: Any, depth: int) -> None:
    """``attributes`` and ``droppedAttributesCount``, which every attributed message has;
    ``depth`` is the message's own, in the request."""
    for i, item in enumerate(_list(fields.get("attributes", []), f"{path}.attributes")):
        _key_value(item, f"{path}.attributes[{i}]", out.attributes.add(), depth + 1)
    if "droppedAttributesCount" in fields:
        count = fields["droppedAttributesCount"]
        out.dropped_attributes_count = _int(count, f"{path}.droppedAttributesCount", 32)


def _key_value(obj: Json, path: str, out: KeyValue, depth: int) -> None:
    _within_depth(path, depth)
    fields = _fields(obj, path, _KEY_VALUE)
    out.key = _string(fields.get("key", ""), f"{path}.key")
    if "value" in fields:
        _any_value(fields["value"], f"{path}.value", out.value, depth + 1)


def _within_depth(path: str, depth: int) -> None:
    if depth > MAX_MESSAGE_DEPTH:
        raise OtlpJsonError(
            f"{path}: nested deeper than the {MAX_MESSAGE_DEPTH} message levels protobuf reads "
            "(about 47 levels of arrayValue in a span attribute)"
        )


def _any_value(obj: Json, path: str, out: AnyValue, depth: int) -> None:
    _within_depth(path, depth)
    fields = _fields(obj, path, _ANY_VALUE)
    if len(fields) > 1:
        raise OtlpJsonError(f"{path}: an AnyValue holds one of {sorted(fields)}, not several")
    for name, value in fields.items():
        field_path = f"{path}.{name}"
        if name == "stringValue":
            out.string_value = _string(value, field_path)
        elif name == "boolValue":
            if not isinstance(value, bool):
                raise OtlpJsonError(f"{field_path}: expected a boolean")
            out.bool_value = value
        elif name == "intValue":
            out.int_value = _int(value, field_path, signed=True)
        elif name == "doubleValue":
            out.double_value = _double(value, field_path)
        elif name == "bytesValue":
            try:
                out.bytes_value = base64.b64decode(_string(value, field_path), validate=True)
            except binascii.Error:
                raise OtlpJsonError(f"{field_path}: not valid base64") from None
        elif name == "arrayValue":
            _within_depth(field_path, depth + 1)
            out.array_value.SetInParent()
            values = _fields(value, field_path, _VALUES).get("values", [])
            for i, item in enumerate(_list(values, f"{field_path}.values")):
                _any_value(
                    item, f"{field_path}.values[{i}]", out.array_value.values.add(), depth + 2
                )
        else:
            _within_depth(field_path, depth + 1)
            out.kvlist_value.SetInParent()
            values = _fields(value, field_path, _VALUES).get("values", [])
            for i, item in enumerate(_list(values, f"{field_path}.values")):
                _key_value(
                    item, f"{field_path}.values[{i}]", out.kvlist_value.values.add(), depth + 2
                )


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _double(value: Json, path: str) -> float:
    if isinstance(value, bool):
        raise OtlpJsonError(f"{path}: expected a number, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise OtlpJsonError(f"{path}: expected a number, got {value!r}")
