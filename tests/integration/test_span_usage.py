"""Cache and reasoning tokens, as the conventions carry them, stored with each span and read
back with the trace, through the real SDK exporter and both deployments."""

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support import export_spans, wait_for

pytestmark = pytest.mark.integration

CALLS = {
    "genai": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_creation.input_tokens": 100,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.reasoning.output_tokens": 120,
        },
        {"cache_read_tokens": 600, "cache_write_tokens": 100, "output_reasoning_tokens": 120},
    ),
    "openinference": (
        {
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 50,
            "llm.token_count.prompt_details.cache_read": 20,
            "llm.token_count.completion": 10,
            "llm.token_count.completion_details.reasoning": 4,
        },
        {"cache_read_tokens": 20, "output_reasoning_tokens": 4},
    ),
}


def test_cache_and_reasoning_tokens_are_stored_with_the_span(deployment):
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("usage")
    with tracer.start_as_current_span("agent") as root:
        for name, (attributes, _) in CALLS.items():
            with tracer.start_as_current_span(name, attributes=attributes):
                pass
    export_spans(deployment.otlp_url, list(memory.get_finished_spans()), "usage")
    url = f"{deployment.api_url}/api/3.0/mlflow/traces/tr-{root.get_span_context().trace_id:032x}"

    def spans() -> dict:
        reply = httpx.get(url)
        found = reply.json()["trace"]["data"]["spans"] if reply.status_code == 200 else []
        return {span["name"]: span for span in found}

    wait_for(lambda: len(spans()) == 3, 30, "the trace stored")
    stored = spans()
    for name, (_, usage) in CALLS.items():
        assert stored[name]["usage"] == usage, name
    assert stored["agent"]["usage"] == {}
    assert (stored["genai"]["input_tokens"], stored["genai"]["output_tokens"]) == (1000, 300)
