"""Span attribute conventions → the canonical record. First match wins, in the order
OTel GenAI, OpenInference, MLflow, Traceloop (the table in docs/conventions.md)."""

import contextlib
import json
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trace_insights.core import money, storable
from trace_insights.core.records import ERROR, OK, SPAN_TYPES, UNSET, SpanRecord

GENAI_OPERATIONS = {
    "text_completion": "LLM",
    "generate_content": "LLM",
    "chat": "CHAT_MODEL",
    "execute_tool": "TOOL",
    "retrieval": "RETRIEVER",
    "invoke_workflow": "CHAIN",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "embeddings": "EMBEDDING",
}
OPENINFERENCE_KINDS = {
    "LLM": "LLM",
    "TOOL": "TOOL",
    "RETRIEVER": "RETRIEVER",
    "CHAIN": "CHAIN",
    "AGENT": "AGENT",
    "EMBEDDING": "EMBEDDING",
    "RERANKER": "RERANKER",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
MLFLOW_TYPES = {name: name for name in SPAN_TYPES} | {"TASK": "CHAIN", "WORKFLOW": "CHAIN"}
TRACELOOP_KINDS = {"workflow": "CHAIN", "task": "CHAIN", "agent": "AGENT", "tool": "TOOL"}
TRACELOOP_REQUEST_TYPES = {
    "completion": "LLM",
    "chat": "CHAT_MODEL",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
}

TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "traceloop.entity.name")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name", "mlflow.llm.model")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "mlflow.chat.tokenUsage.input_tokens",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "mlflow.chat.tokenUsage.output_tokens",
)
MLFLOW_TOKEN_USAGE = "mlflow.chat.tokenUsage"
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
# what the sender says the call cost, in USD: a total (MLflow's client sets its own span
# attribute, a JSON object, when it can price the call), else the sum of input and output parts
REPORTED_COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")
MLFLOW_COST = "mlflow.llm.cost"  # {"input_cost", "output_cost", "total_cost"}
REPORTED_COST_PARTS = ("llm.cost.prompt", "llm.cost.completion")
# usage beyond input and output, by genai-prices' names (each is counted within input or
# output, as the conventions say): the attributes, first found wins, then the field of
# MLflow's token usage object
USAGE_DETAILS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "cache_read_tokens": (
        (
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",  # the name before GenAI 1.37, Traceloop's
            "llm.token_count.prompt_details.cache_read",
            "mlflow.chat.tokenUsage.cache_read_input_tokens",
        ),
        "cache_read_input_tokens",
    ),
    "cache_write_tokens": (
        (
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
            "mlflow.chat.tokenUsage.cache_creation_input_tokens",
        ),
        "cache_creation_input_tokens",
    ),
    "output_reasoning_tokens": (
        ("gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning"),
        None,
    ),
}
# span attribute prefixes whose rest is a tag key, with the keys a convention names otherwise
TAG_PREFIXES: dict[str, dict[str, str]] = {
    "tags.": {},
    "mlflow.traceTag.": {},  # MLflow's OTLP export of a trace's tags
    "traceloop.association.properties.": {"user_id": "user", "session_id": "session"},
}
_ANY_TAG_PREFIX = tuple(TAG_PREFIXES)
TAG_ATTRIBUTES = {
    "mlflow.trace.user": "user",
    "mlflow.trace.session": "session",
    "user.id": "user",
    "session.id": "session",
}
RESOURCE_TAGS = {
    "deployment.environment.name": "environment",
    "deployment.environment": "environment",
    "service.version": "version",
    "service.name": "service",
}
_STATUS = {0: UNSET, 1: OK, 2: ERROR}


def value_of(value: AnyValue) -> Any:
    """The plain value, storable (``core.storable``)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return storable.text(value.string_value)
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)  # JSON (and PostgreSQL's jsonb) has no NaN or infinity
    return getattr(value, kind)


def attributes_of(items: Iterable[KeyValue]) -> dict[str, Any]:
    """Attributes as plain values; MLflow's JSON-encoded ``mlflow.*`` strings are decoded."""
    out: dict[str, Any] = {}
    for item in items:
        value = value_of(item.value)
        if item.key.startswith("mlflow.") and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = storable.deep(json.loads(value))  # "\u0000" decodes to NUL
        out[storable.text(item.key)] = value
    return out


def span_type(attributes: Mapping[str, Any]) -> str:
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in GENAI_OPERATIONS:
        return GENAI_OPERATIONS[operation]
    kind = attributes.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in OPENINFERENCE_KINDS:
        if kind.upper() == "LLM" and _has_messages(attributes):
            return "CHAT_MODEL"  # OpenInference's LLM covers chat calls; the others tell them apart
        return OPENINFERENCE_KINDS[kind.upper()]
    mlflow = attributes.get("mlflow.spanType")
    if isinstance(mlflow, str) and mlflow.upper() in MLFLOW_TYPES:
        return MLFLOW_TYPES[mlflow.upper()]
    traceloop = attributes.get("traceloop.span.kind")
    if isinstance(traceloop, str) and traceloop.lower() in TRACELOOP_KINDS:
        return TRACELOOP_KINDS[traceloop.lower()]
    request = attributes.get("llm.request.type")
    if isinstance(request, str) and request.lower() in TRACELOOP_REQUEST_TYPES:
        return TRACELOOP_REQUEST_TYPES[request.lower()]
    return "UNKNOWN"


OPENINFERENCE_MESSAGES = ("llm.input_messages.", "llm.output_messages.")


def _has_messages(attributes: Mapping[str, Any]) -> bool:
    """An OpenInference LLM span of a chat call carries its messages, a completion its prompts."""
    return any(key.startswith(OPENINFERENCE_MESSAGES) for key in attributes)


def _first_string(attributes: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _token_count(value: Any) -> int | None:
    """Counts arrive as ints, floats or (in OTLP/JSON) strings; anything else is no count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return storable.tokens(value)
    if isinstance(value, float) and value.is_integer():
        return storable.tokens(int(value))
    if isinstance(value, str):
        try:
            return _token_count(float(value))
        except ValueError:
            return None
    return None


def _tokens(
    attributes: Mapping[str, Any], keys: Iterable[str], usage_field: str | None
) -> int | None:
    for key in keys:
        if key in attributes:
            count = _token_count(attributes[key])
            if count is not None:
                return count
    usage = attributes.get(MLFLOW_TOKEN_USAGE)
    if usage_field is not None and isinstance(usage, Mapping):
        return _token_count(usage.get(usage_field))
    return None


def usage_details(attributes: Mapping[str, Any]) -> dict[str, int]:
    """The span's cache and reasoning token counts that it reports (``USAGE_DETAILS``)."""
    found = {}
    for name, (keys, usage_field) in USAGE_DETAILS.items():
        count = _tokens(attributes, keys, usage_field)
        if count is not None:
            found[name] = count
    return found


def _dollars(value: Any) -> Decimal | None:
    """A cost as sent: a number or (OTLP/JSON) a numeric string; anything else is none."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))  # a float's shortest repr: the digits the sender wrote
    except ArithmeticError:
        return None


def reported_cost(attributes: Mapping[str, Any]) -> int | None:
    """The cost the span reports, in pico-USD (``REPORTED_COST_KEYS``, else the parts)."""
    for key in REPORTED_COST_KEYS:
        if key in attributes:
            found = _dollars(attributes[key])
            if found is not None:
                return money.pico(found)
    mlflow = attributes.get(MLFLOW_COST)
    if isinstance(mlflow, Mapping) and (found := _dollars(mlflow.get("total_cost"))) is not None:
        return money.pico(found)
    parts = [_dollars(attributes[key]) for key in REPORTED_COST_PARTS if key in attributes]
    known = [part for part in parts if part is not None]
    return money.pico(sum(known, Decimal(0))) if known and len(known) == len(parts) else None


def provider(attributes: Mapping[str, Any]) -> str | None:
    """The model's provider (``PROVIDER_KEYS``), lower-cased as genai-prices names them."""
    found = _first_string(attributes, PROVIDER_KEYS)
    return found.lower() if found is not None else None


def _tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def trace_tags(attributes: Mapping[str, Any], resource: Mapping[str, Any]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, name in RESOURCE_TAGS.items():
        if key in resource and name not in tags:
            tags[name] = _tag_value(resource[key])
    metadata = attributes.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = storable.deep(json.loads(metadata))
        except ValueError:
            metadata = None
    if isinstance(metadata, Mapping):
        for key, value in metadata.items():
            tags[storable.key(str(key))] = _tag_value(value)
    for key, name in TAG_ATTRIBUTES.items():
        if key in attributes:
            tags[name] = _tag_value(attributes[key])
    for key, value in attributes.items():
        if not key.startswith(_ANY_TAG_PREFIX):  # one check per attribute on the per-span path
            continue
        for prefix, renamed in TAG_PREFIXES.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                name = key[len(prefix) :]
                tags[storable.key(renamed.get(name, name))] = _tag_value(value)
    return tags


# every attribute a model call's facts (model, tokens, usage, provider, reported cost) are read
# from: a span with none of them (an agent step, a tool call) skips those readers
_CALL_KEYS = frozenset(
    (
        *MODEL_KEYS,
        *INPUT_TOKEN_KEYS,
        *OUTPUT_TOKEN_KEYS,
        MLFLOW_TOKEN_USAGE,
        *(key for keys, _ in USAGE_DETAILS.values() for key in keys),
        *PROVIDER_KEYS,
        *REPORTED_COST_KEYS,
        MLFLOW_COST,
        *REPORTED_COST_PARTS,
    )
)


def normalize(span: Span, resource: Mapping[str, Any], experiment_id: str) -> SpanRecord:
    attributes = attributes_of(span.attributes)
    kind = span_type(attributes)
    name = storable.text(span.name)
    if _CALL_KEYS.isdisjoint(attributes):
        model = input_tokens = output_tokens = call_provider = cost = None
        usage: dict[str, int] = {}
    else:
        model = _first_string(attributes, MODEL_KEYS)
        input_tokens = _tokens(attributes, INPUT_TOKEN_KEYS, "input_tokens")
        output_tokens = _tokens(attributes, OUTPUT_TOKEN_KEYS, "output_tokens")
        usage = usage_details(attributes)
        call_provider = provider(attributes)
        cost = reported_cost(attributes)
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        experiment_id=experiment_id,
        name=name,
        span_type=kind,
        status=_STATUS.get(span.status.code, UNSET),
        status_message=storable.text(span.status.message),
        start_time_ns=span.start_time_unix_nano,
        end_time_ns=span.end_time_unix_nano,
        tool_name=(_first_string(attributes, TOOL_NAME_KEYS) or name) if kind == "TOOL" else None,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        usage=usage,
        provider=call_provider,
        reported_cost=cost,
        attributes=attributes,
        trace_tags=trace_tags(attributes, resource),
        events=[storable.text(event.name) for event in span.events],
    )
