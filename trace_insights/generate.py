"""Realistic LLM-agent traffic sent through the real OpenTelemetry SDK, for demos and load.

Each trace is an agent run (root AGENT span, LLM calls with models and token counts, TOOL calls
that sometimes fail, a RETRIEVER step) written in one of three conventions in turn: MLflow
(``mlflow.spanType``), OpenInference (``openinference.span.kind``) and OTel GenAI (``gen_ai.*``).
"""

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import typer
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, Status, StatusCode, Tracer

CONVENTIONS = ("mlflow", "openinference", "genai")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b")
TOOLS = ("web_search", "calculator", "sql_query", "send_email", "get_weather")
QUERY_TYPES = ("simple", "complex", "lookup")
TIERS = ("free", "pro", "enterprise")

# span type → value of the convention's type attribute
_KIND = {
    "mlflow": ("mlflow.spanType", lambda t: json.dumps(t)),
    "openinference": ("openinference.span.kind", lambda t: "LLM" if t == "CHAT_MODEL" else t),
    "genai": (
        "gen_ai.operation.name",
        lambda t: {
            "AGENT": "invoke_agent",
            "CHAT_MODEL": "chat",
            "TOOL": "execute_tool",
            "RETRIEVER": "retrieval",
        }[t],
    ),
}


@dataclass
class Sent:
    traces: int
    spans: int
    failed_spans: int
    roots: list[tuple[str, bool]]  # (trace id in hex, whether the root failed), as exported


class Traffic:
    """Draws trace shapes; ``seed`` makes the traffic repeatable."""

    def __init__(self, error_rate: float = 0.1, seed: int | None = None) -> None:
        self.error_rate = error_rate
        self.random = random.Random(seed)

    def emit(self, tracer: Tracer, index: int, end_ns: int | None = None) -> int:
        """Write one trace ending at ``end_ns`` (default now); returns its span count."""
        rnd = self.random
        convention = CONVENTIONS[index % len(CONVENTIONS)]
        model = rnd.choice(MODELS)
        steps: list[tuple[str, str, int]] = []  # (type, name, duration ms)
        for _ in range(rnd.randint(1, 3)):
            steps.append(("CHAT_MODEL", model, int(rnd.lognormvariate(6.5, 0.6))))
        for tool in rnd.sample(TOOLS, rnd.randint(0, 3)):
            steps.append(("TOOL", tool, int(rnd.lognormvariate(4.5, 0.8))))
        if rnd.random() < 0.5:
            steps.append(("RETRIEVER", "vector_search", int(rnd.lognormvariate(3.5, 0.5))))
        rnd.shuffle(steps)
        total_ms = sum(duration for _, _, duration in steps) + rnd.randint(5, 50)
        end_ns = time.time_ns() if end_ns is None else end_ns
        cursor = end_ns - total_ms * 1_000_000
        root = tracer.start_span("agent_run", start_time=cursor)
        self._set_type(root, convention, "AGENT")
        self._set_tags(root, convention)
        failed = False
        context = trace.set_span_in_context(root)
        for span_type, name, duration_ms in steps:
            span_name = name if convention == "mlflow" or span_type != "TOOL" else f"tool {name}"
            span = tracer.start_span(span_name, context=context, start_time=cursor)
            self._set_type(span, convention, span_type)
            if span_type == "CHAT_MODEL":
                self._set_model(span, convention, name)
            elif span_type == "TOOL":
                self._set_tool(span, convention, name)
                if rnd.random() < self.error_rate:
                    failed = True
                    span.set_status(Status(StatusCode.ERROR, f"{name} timed out"))
            cursor += duration_ms * 1_000_000
            span.end(end_time=cursor)
        if failed and rnd.random() < 0.6:
            root.set_status(Status(StatusCode.ERROR, "agent gave up after a tool failure"))
        else:
            root.set_status(Status(StatusCode.OK))
        root.end(end_time=end_ns)
        return len(steps) + 1

    def _set_type(self, span: Span, convention: str, span_type: str) -> None:
        key, encode = _KIND[convention]
        span.set_attribute(key, encode(span_type))

    def _set_tags(self, span: Span, convention: str) -> None:
        tags = {
            "query_type": self.random.choice(QUERY_TYPES),
            "customer_tier": self.random.choice(TIERS),
        }
        user = f"user-{self.random.randint(1, 50)}"
        session = f"session-{self.random.randint(1, 200)}"
        if convention == "openinference":
            span.set_attribute("metadata", json.dumps(tags))
            span.set_attribute("user.id", user)
            span.set_attribute("session.id", session)
            return
        for key, value in tags.items():
            span.set_attribute(f"tags.{key}", value)
        span.set_attribute("mlflow.trace.user", user)
        span.set_attribute("mlflow.trace.session", session)

    def _set_model(self, span: Span, convention: str, model: str) -> None:
        tokens_in = self.random.randint(200, 4000)
        tokens_out = self.random.randint(20, 800)
        if convention == "mlflow":
            span.set_attribute("mlflow.llm.model", model)
            span.set_attribute(
                "mlflow.chat.tokenUsage",
                json.dumps(
                    {
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "total_tokens": tokens_in + tokens_out,
                    }
                ),
            )
        elif convention == "openinference":
            span.set_attribute("llm.model_name", model)
            span.set_attribute("llm.token_count.prompt", tokens_in)
            span.set_attribute("llm.token_count.completion", tokens_out)
        else:
            span.set_attribute("gen_ai.request.model", model)
            span.set_attribute("gen_ai.response.model", model)
            span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
            span.set_attribute("gen_ai.usage.output_tokens", tokens_out)

    def _set_tool(self, span: Span, convention: str, tool: str) -> None:
        if convention == "openinference":
            span.set_attribute("tool.name", tool)
        elif convention == "genai":
            span.set_attribute("gen_ai.tool.name", tool)


class _CountingExporter(SpanExporter):
    """Counts what the collector refused after the SDK's own retries, and notes the traces it
    took (the demo judges some of them)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0
        self.roots: list[tuple[str, bool]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
            return result
        for span in spans:
            if span.parent is None and span.context is not None:
                failed = span.status.status_code is StatusCode.ERROR
                self.roots.append((f"{span.context.trace_id:032x}", failed))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def exporter_for(
    endpoint: str, protocol: str, headers: dict[str, str], timeout_s: float = 30.0
) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        target = endpoint.removeprefix("http://")
        return Grpc(endpoint=target, insecure=True, headers=headers, timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=f"{endpoint.rstrip('/')}/v1/traces", headers=headers, timeout=timeout_s)


def send(
    traffic: Traffic,
    *,
    endpoint: str,
    protocol: str,
    traces: int,
    rate: float,
    experiment_id: str,
    token: str | None = None,
    progress: bool = False,
) -> Sent:
    headers = {"x-mlflow-experiment-id": experiment_id}
    if token:
        headers["authorization"] = f"Bearer {token}"
    exporter = _CountingExporter(exporter_for(endpoint, protocol, headers))
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "agent-demo",
                "service.version": "1.4.2",
                "deployment.environment.name": "demo",
            }
        )
    )
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=100_000, schedule_delay_millis=200)
    )
    tracer = provider.get_tracer("trace_insights.generate")
    spans = 0
    started = time.monotonic()
    with typer.progressbar(length=traces, label="sending", hidden=not progress) as bar:
        for index in range(traces):
            if rate > 0:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            spans += traffic.emit(tracer, index)
            bar.update(1)
    provider.force_flush()
    provider.shutdown()
    return Sent(traces=traces, spans=spans, failed_spans=exporter.failed, roots=exporter.roots)


def judge(
    api_url: str, roots: list[tuple[str, bool]], rnd: random.Random, token: str | None
) -> int:
    """An LLM judge's feedback (``correct``: yes or no, "no" likelier where the trace failed)
    on some of the traces, through the API as any client would; returns how many it logged. A
    trace not yet ingested is skipped (the API's 404)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    logged = 0
    with httpx.Client(base_url=api_url, headers=headers, timeout=10.0) as client:
        for trace_id, failed in roots:
            if rnd.random() >= 0.4:
                continue
            wrong = rnd.random() < (0.7 if failed else 0.1)
            assessment = {
                "assessment_name": "correct",
                "source": {"source_type": "LLM_JUDGE", "source_id": "demo-judge"},
                "feedback": {"value": "no" if wrong else "yes"},
                "rationale": "the answer misses the question" if wrong else None,
            }
            reply = client.post(
                f"/api/3.0/mlflow/traces/tr-{trace_id}/assessments",
                json={"assessment": assessment},
            )
            logged += reply.status_code == 200
    return logged
