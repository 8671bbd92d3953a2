"""What every insights endpoint must answer about a set of SDK spans, computed here from the
raw span attributes — none of the product's normalization, dimension or NPMI code."""

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from genai_prices import Usage, calc_price

LATENCY_THRESHOLDS = (100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
COST_THRESHOLDS = ("0.001", "0.01", "0.1", "1", "10")  # USD
COUNT_THRESHOLDS = (0, 1, 2, 3, 5, 10)
_GENAI_KINDS = {
    "invoke_agent": "AGENT",
    "chat": "CHAT_MODEL",
    "execute_tool": "TOOL",
    "retrieval": "RETRIEVER",
}


@dataclass
class TraceFacts:
    trace_id: str
    timestamp_ms: int
    latency_ms: int
    status: str
    kinds: Counter[str] = field(default_factory=Counter)
    tool_calls: list[tuple[str, bool, float]] = field(default_factory=list)  # name, error, ms
    model_calls: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, in, out, ns
    tags: dict[str, str] = field(default_factory=dict)
    assessments: dict[str, Any] = field(default_factory=dict)  # name → current value

    @property
    def input_tokens(self) -> int:
        return sum(call[1] for call in self.model_calls)

    @property
    def output_tokens(self) -> int:
        return sum(call[2] for call in self.model_calls)

    @property
    def cost(self) -> Decimal:
        """USD of the calls genai-prices prices (by model name: the traffic names no provider),
        each rounded to the pico-dollar as a stored call is."""
        total = Decimal(0)
        for name, given, taken, start_ns in self.model_calls:
            try:
                found = calc_price(
                    Usage(input_tokens=given, output_tokens=taken),
                    model_ref=name,
                    genai_request_timestamp=datetime.fromtimestamp(start_ns / 1e9, UTC),
                )
            except LookupError:
                continue  # unpriced
            total += found.total_price.quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
        return total

    def dimensions(self) -> set[str]:
        dims = {f"status={self.status}"}
        for kind, n in self.kinds.items():
            dims.add(f"span.type={kind}")
            dims.update(f"count(span.type={kind})>{t}" for t in COUNT_THRESHOLDS if n > t)
        for name, failed, _ in self.tool_calls:
            dims.add(f"tools.{name}=used")
            if failed:
                dims.add(f"tools.{name}=error")
        dims.update(f"model={name}" for name, *_ in self.model_calls)
        dims.update(f"latency>{t}" for t in LATENCY_THRESHOLDS if self.latency_ms > t)
        cost = self.cost
        dims.update(f"cost>{t}" for t in COST_THRESHOLDS if cost > Decimal(t))
        dims.update(f"tags.{k}={v}" for k, v in self.tags.items())
        for name, value in self.assessments.items():
            dims.add(f"assessment.{name}={value if isinstance(value, str) else json.dumps(value)}")
        return dims


def facts(spans: list) -> list[TraceFacts]:
    by_trace: dict[int, list] = {}
    for span in spans:
        by_trace.setdefault(span.context.trace_id, []).append(span)
    out = []
    for trace_id, members in by_trace.items():
        start = min(s.start_time for s in members)
        root = next(s for s in members if s.parent is None)
        trace = TraceFacts(
            trace_id=f"{trace_id:032x}",
            timestamp_ms=start // 1_000_000,
            latency_ms=(max(s.end_time for s in members) - start) // 1_000_000,
            status="ERROR" if root.status.status_code.name == "ERROR" else "OK",
            tags=_tags(root),
        )
        for span in members:
            kind = _kind(span.attributes)
            trace.kinds[kind] += 1
            a = span.attributes
            if kind == "TOOL":
                name = a.get("gen_ai.tool.name") or a.get("tool.name") or span.name
                duration = (span.end_time - span.start_time) / 1_000_000
                trace.tool_calls.append((name, span.status.status_code.name == "ERROR", duration))
            model = (
                a.get("mlflow.llm.model")
                or a.get("llm.model_name")
                or a.get("gen_ai.response.model")
            )
            if model:
                trace.model_calls.append((model, *_tokens(a), span.start_time))
        out.append(trace)
    return out


def npmi(joint: int, count1: int, count2: int, total: int) -> tuple[float, float]:
    """The formula as MLflow writes it (natural log, 0.5 smoothing), NaN when undefined."""
    if total <= 0 or count1 == 0 or count2 == 0:
        return math.nan, math.nan
    cells = [joint, count1 - joint, count2 - joint, total - count1 - count2 + joint]
    if min(cells) < 0:
        return math.nan, math.nan
    if cells[1] == cells[2] == cells[3] == 0:
        return 1.0, 1.0

    def score(n11: float, n10: float, n01: float, n00: float) -> float:
        n = n11 + n10 + n01 + n00
        p11, p1, p2 = n11 / n, (n11 + n10) / n, (n11 + n01) / n
        if p11 >= 1.0:
            return 1.0
        return max(-1.0, min(1.0, math.log(p11 / (p1 * p2)) / -math.log(p11)))

    smoothed = score(*(c + 0.5 for c in cells))
    return (-1.0 if joint == 0 else score(*cells)), smoothed


def _kind(a: Any) -> str:
    if "mlflow.spanType" in a:
        return json.loads(a["mlflow.spanType"])
    if "openinference.span.kind" in a:
        return a["openinference.span.kind"]
    return _GENAI_KINDS[a["gen_ai.operation.name"]]


def _tokens(a: Any) -> tuple[int, int]:
    if "mlflow.chat.tokenUsage" in a:
        usage = json.loads(a["mlflow.chat.tokenUsage"])
        return usage["input_tokens"], usage["output_tokens"]
    if "llm.token_count.prompt" in a:
        return a["llm.token_count.prompt"], a["llm.token_count.completion"]
    return a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]


def _tags(root: Any) -> dict[str, str]:
    a, resource = root.attributes, root.resource.attributes
    tags = {k[5:]: str(v) for k, v in a.items() if k.startswith("tags.")}
    if "metadata" in a:
        tags.update({k: str(v) for k, v in json.loads(a["metadata"]).items()})
    for key, names in (
        ("user", ("mlflow.trace.user", "user.id")),
        ("session", ("mlflow.trace.session", "session.id")),
    ):
        for name in names:
            if name in a:
                tags[key] = str(a[name])
    for key, name in (
        ("environment", "deployment.environment.name"),
        ("service", "service.name"),
        ("version", "service.version"),
    ):
        if name in resource:
            tags[key] = str(resource[name])
    return tags
