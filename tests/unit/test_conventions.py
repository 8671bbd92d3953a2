"""Every row of the conventions table (docs/conventions.md) gives the right canonical record."""

import json

import pytest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trace_insights.core.conventions import normalize


def _span(attributes: dict, name: str = "op", status: int = 0, parent: bytes = b"") -> Span:
    span = Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=1_000_000_000,
        end_time_unix_nano=1_250_000_000,
    )
    span.status.code = status
    for key, value in attributes.items():
        item = KeyValue(key=key)
        if isinstance(value, bool):
            item.value.bool_value = value
        elif isinstance(value, int):
            item.value.int_value = value
        elif isinstance(value, float):
            item.value.double_value = value
        else:
            item.value.string_value = value
        span.attributes.append(item)
    return span


def _record(attributes: dict, resource: dict | None = None, **kwargs):
    return normalize(_span(attributes, **kwargs), resource or {}, "7")


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        # OTel GenAI
        ({"gen_ai.operation.name": "text_completion"}, "LLM"),
        ({"gen_ai.operation.name": "generate_content"}, "LLM"),
        ({"gen_ai.operation.name": "chat"}, "CHAT_MODEL"),
        ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
        ({"gen_ai.operation.name": "retrieval"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "CHAIN"),
        ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
        ({"gen_ai.operation.name": "create_agent"}, "AGENT"),
        ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
        # OpenInference
        ({"openinference.span.kind": "LLM"}, "LLM"),
        ({"openinference.span.kind": "LLM", "llm.prompts.0.prompt.text": "Hi"}, "LLM"),
        # a chat call, as OpenAI's instrumentation writes it: the same type as GenAI's chat
        (
            {"openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user"},
            "CHAT_MODEL",
        ),
        (
            {"openinference.span.kind": "llm", "llm.output_messages.0.message.content": "ok"},
            "CHAT_MODEL",
        ),
        ({"openinference.span.kind": "TOOL"}, "TOOL"),
        ({"openinference.span.kind": "RETRIEVER"}, "RETRIEVER"),
        ({"openinference.span.kind": "CHAIN"}, "CHAIN"),
        ({"openinference.span.kind": "AGENT"}, "AGENT"),
        ({"openinference.span.kind": "EMBEDDING"}, "EMBEDDING"),
        ({"openinference.span.kind": "RERANKER"}, "RERANKER"),
        ({"openinference.span.kind": "tool"}, "TOOL"),
        # MLflow (JSON-encoded values)
        ({"mlflow.spanType": '"LLM"'}, "LLM"),
        ({"mlflow.spanType": '"CHAT_MODEL"'}, "CHAT_MODEL"),
        ({"mlflow.spanType": '"TOOL"'}, "TOOL"),
        ({"mlflow.spanType": '"RETRIEVER"'}, "RETRIEVER"),
        ({"mlflow.spanType": '"CHAIN"'}, "CHAIN"),
        ({"mlflow.spanType": '"TASK"'}, "CHAIN"),
        ({"mlflow.spanType": '"WORKFLOW"'}, "CHAIN"),
        ({"mlflow.spanType": '"AGENT"'}, "AGENT"),
        ({"mlflow.spanType": '"EMBEDDING"'}, "EMBEDDING"),
        ({"mlflow.spanType": '"RERANKER"'}, "RERANKER"),
        ({"mlflow.spanType": '"PARSER"'}, "PARSER"),
        ({"mlflow.spanType": "TOOL"}, "TOOL"),
        # Traceloop
        ({"traceloop.span.kind": "workflow"}, "CHAIN"),
        ({"traceloop.span.kind": "task"}, "CHAIN"),
        ({"traceloop.span.kind": "agent"}, "AGENT"),
        ({"traceloop.span.kind": "tool"}, "TOOL"),
        ({"llm.request.type": "completion"}, "LLM"),
        ({"llm.request.type": "chat"}, "CHAT_MODEL"),
        ({"llm.request.type": "embedding"}, "EMBEDDING"),
        ({"llm.request.type": "rerank"}, "RERANKER"),
        # first match wins; nothing known → UNKNOWN
        ({"gen_ai.operation.name": "chat", "openinference.span.kind": "TOOL"}, "CHAT_MODEL"),
        ({"openinference.span.kind": "AGENT", "mlflow.spanType": '"TOOL"'}, "AGENT"),
        ({"gen_ai.operation.name": "dance"}, "UNKNOWN"),
        ({}, "UNKNOWN"),
    ],
)
def test_span_type(attributes, expected):
    assert _record(attributes).span_type == expected


@pytest.mark.parametrize(
    ("attributes", "name", "expected"),
    [
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, "x", "search"),
        ({"openinference.span.kind": "TOOL", "tool.name": "calc"}, "x", "calc"),
        ({"mlflow.spanType": '"TOOL"'}, "lookup_weather", "lookup_weather"),
        ({"traceloop.span.kind": "tool", "traceloop.entity.name": "sql"}, "x", "sql"),
        ({"openinference.span.kind": "LLM", "tool.name": "calc"}, "x", None),
    ],
)
def test_tool_name(attributes, name, expected):
    assert _record(attributes, name=name).tool_name == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.response.model": "gpt-4o-2024", "gen_ai.request.model": "gpt-4o"}, "gpt-4o-2024"),
        ({"gen_ai.request.model": "gpt-4o"}, "gpt-4o"),
        ({"llm.model_name": "claude-3"}, "claude-3"),
        ({"mlflow.llm.model": '"gpt-4"'}, "gpt-4"),
        ({}, None),
    ],
)
def test_model(attributes, expected):
    assert _record(attributes).model == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3}, (12, 3)),
        ({"gen_ai.usage.prompt_tokens": 5, "gen_ai.usage.completion_tokens": 2}, (5, 2)),
        ({"llm.token_count.prompt": "40", "llm.token_count.completion": "9"}, (40, 9)),
        (
            {"mlflow.chat.tokenUsage": json.dumps({"input_tokens": 7, "output_tokens": 1})},
            (7, 1),
        ),
        (
            {"mlflow.chat.tokenUsage.input_tokens": 8, "mlflow.chat.tokenUsage.output_tokens": 2},
            (8, 2),
        ),
        ({"gen_ai.usage.input_tokens": "many", "gen_ai.usage.output_tokens": -1}, (None, None)),
    ],
)
def test_tokens(attributes, expected):
    record = _record(attributes)
    assert (record.input_tokens, record.output_tokens) == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {
                "gen_ai.usage.cache_read.input_tokens": 50,
                "gen_ai.usage.cache_creation.input_tokens": 25,
                "gen_ai.usage.reasoning.output_tokens": "7",
            },
            {"cache_read_tokens": 50, "cache_write_tokens": 25, "output_reasoning_tokens": 7},
        ),
        (  # the GenAI names before 1.37, which Traceloop writes
            {
                "gen_ai.usage.cache_read_input_tokens": 3,
                "gen_ai.usage.cache_creation_input_tokens": 4,
            },
            {"cache_read_tokens": 3, "cache_write_tokens": 4},
        ),
        (
            {
                "llm.token_count.prompt_details.cache_read": 11,
                "llm.token_count.prompt_details.cache_write": 2,
                "llm.token_count.completion_details.reasoning": 9,
            },
            {"cache_read_tokens": 11, "cache_write_tokens": 2, "output_reasoning_tokens": 9},
        ),
        (
            {
                "mlflow.chat.tokenUsage": json.dumps(
                    {
                        "input_tokens": 70,
                        "cache_read_input_tokens": 60,
                        "cache_creation_input_tokens": 5,
                    }
                )
            },
            {"cache_read_tokens": 60, "cache_write_tokens": 5},
        ),
        (  # the newer name wins; what is no count is left out
            {
                "gen_ai.usage.cache_read.input_tokens": 8,
                "gen_ai.usage.cache_read_input_tokens": 1,
                "gen_ai.usage.reasoning.output_tokens": "lots",
            },
            {"cache_read_tokens": 8},
        ),
        ({"gen_ai.usage.input_tokens": 5}, {}),
    ],
)
def test_usage_details(attributes, expected):
    assert _record(attributes).usage == expected


def test_status_from_otlp_status_and_root():
    assert _record({}, status=2).status == "ERROR"
    assert _record({}, status=1).status == "OK"
    assert _record({}, status=0).status == "UNSET"
    assert _record({}).is_root
    assert not _record({}, parent=b"\x01" * 8).is_root


def test_trace_tags_from_every_source():
    record = _record(
        {
            "tags.query_type": "complex",
            "metadata": json.dumps({"customer_tier": "pro", "ab": 2}),
            "mlflow.trace.user": '"alice"',
            "mlflow.trace.session": '"s-1"',
        },
        resource={
            "deployment.environment.name": "prod",
            "service.version": "1.2.3",
            "service.name": "agent",
        },
    )
    assert record.trace_tags == {
        "query_type": "complex",
        "customer_tier": "pro",
        "ab": "2",
        "user": "alice",
        "session": "s-1",
        "environment": "prod",
        "version": "1.2.3",
        "service": "agent",
    }


def test_mlflow_and_traceloop_tag_attributes():
    """MLflow's OTLP export writes a trace's tags as ``mlflow.traceTag.<key>`` (JSON-encoded,
    as its other ``mlflow.*`` attributes); Traceloop's association properties are tags, its
    ``user_id`` and ``session_id`` the same ``user`` and ``session`` as the other conventions'."""
    record = _record(
        {
            "mlflow.traceTag.team": '"payments"',
            "mlflow.traceTag.mlflow.traceName": '"checkout"',
            "traceloop.association.properties.user_id": "u-7",
            "traceloop.association.properties.session_id": "s-3",
            "traceloop.association.properties.plan": "pro",
            "mlflow.traceTag.": "no key",
        }
    )
    assert record.trace_tags == {
        "team": "payments",
        "mlflow.traceName": "checkout",
        "user": "u-7",
        "session": "s-3",
        "plan": "pro",
    }


def test_openinference_user_and_old_environment_key():
    record = _record(
        {"user.id": "bob", "session.id": "s-9"}, resource={"deployment.environment": "dev"}
    )
    assert record.trace_tags == {"user": "bob", "session": "s-9", "environment": "dev"}


def test_ids_times_and_non_finite_numbers():
    record = _record({"score": float("nan")}, parent=b"\x02" * 8)
    assert record.trace_id == bytes(range(1, 17)).hex()
    assert record.parent_span_id == "02" * 8
    assert record.duration_ms == 250.0
    assert record.attributes["score"] == "nan"


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.provider.name": "openai"}, "openai"),
        ({"gen_ai.system": "Anthropic"}, "anthropic"),  # the name before GenAI 1.37
        ({"llm.provider": "openai", "llm.system": "openai"}, "openai"),  # OpenInference
        ({"llm.system": "mistralai"}, "mistralai"),
        ({"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "x"}, "aws.bedrock"),
        ({}, None),
    ],
)
def test_provider(attributes, expected):
    assert _record(attributes).provider == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.usage.cost": 0.25}, 250_000_000_000),
        ({"llm.cost.total": 0.00125}, 1_250_000_000),  # OpenInference
        ({"llm.cost.total": "0.1"}, 100_000_000_000),  # OTLP/JSON strings
        ({"llm.cost.prompt": 0.00025, "llm.cost.completion": 0.001}, 1_250_000_000),
        ({"llm.cost.prompt": 0.00025}, 250_000_000),
        ({"llm.cost.prompt": 0.1, "llm.cost.completion": "x"}, None),  # half a cost is none
        ({"gen_ai.usage.cost": 1e-13}, 0),  # rounded to the pico-dollar
        ({"gen_ai.usage.cost": -1.0}, None),
        ({"gen_ai.usage.cost": "nan"}, None),
        ({"gen_ai.usage.cost": 1e30}, None),  # past what a span can cost
        ({"gen_ai.usage.cost": True}, None),
        # MLflow's client prices a call itself when it can: its span attribute, JSON
        (
            {"mlflow.llm.cost": '{"input_cost": 0.1, "output_cost": 0.2, "total_cost": 0.3}'},
            3 * 10**11,
        ),
        ({"mlflow.llm.cost": '{"input_cost": 0.1}'}, None),
        ({}, None),
    ],
)
def test_reported_cost(attributes, expected):
    assert _record(attributes).reported_cost == expected


class _Recording(dict):
    """An attribute mapping that records every key asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return False

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        self.asked.add(str(key))
        return default


def test_a_span_without_call_attributes_skips_only_readers_that_would_find_nothing():
    """``normalize`` skips the model call's readers for a span holding none of
    ``_CALL_KEYS``: every key those readers ask for must be one of them."""
    from trace_insights.core import conventions

    attributes = _Recording()
    conventions._first_string(attributes, conventions.MODEL_KEYS)
    conventions._tokens(attributes, conventions.INPUT_TOKEN_KEYS, "input_tokens")
    conventions._tokens(attributes, conventions.OUTPUT_TOKEN_KEYS, "output_tokens")
    conventions.usage_details(attributes)
    conventions.provider(attributes)
    conventions.reported_cost(attributes)
    assert attributes.asked and attributes.asked <= conventions._CALL_KEYS
