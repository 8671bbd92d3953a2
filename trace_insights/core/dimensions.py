"""The dimension registry: every family of trace facts whose occurrence and co-occurrence
counts make NPMI between any two of them computable from the aggregates — one object per
family, and every reader and writer goes through it.

A family knows
- its stream dimensions: the names the aggregates count for a trace (``status=ERROR``,
  ``span.type=TOOL``, ``tools.web_search=used`` and ``=error``, ``model=gpt-4o``,
  ``tags.environment=prod``, ``latency>1000`` (ms), ``count(span.type=LLM)>3``,
  ``assessment.correct=yes``), and how to read one back as the API's family name and value;
- what discovery describes of it (its display name and parameters);
- how to parse an API request ``{name, parameters}`` into *terms*: a signed sum of stream
  dimensions and ``ALL`` (every trace) — ``latency <= 1000`` is ALL - ``latency>1000``,
  ``tools.x = success`` is ``tools.x=used`` - ``tools.x=error`` — so counts and intersections
  are bilinear in occurrence and co-occurrence counts (``count``, ``joint``); terms are None
  when the stream does not count it (``latency > 1234``) and the source of truth answers;
- its filter-language form, through which the source of truth answers it.

Its SQL counting form is in ``trace_insights.truth.dimension_counts``, one per family, checked
against the stream by a property test. Adding a family: a ``Family`` here, its SQL form there,
both tests (docs/architecture.md).
"""

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from trace_insights.core import money
from trace_insights.core.filters import And, Comparison, Count, Key, Node, Not, Or
from trace_insights.core.records import ERROR, SpanRecord, TraceSummary

LATENCY_THRESHOLDS_MS = (100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
SPAN_COUNT_THRESHOLDS = (0, 1, 2, 3, 5, 10)
COST_THRESHOLDS_USD = ("0.001", "0.01", "0.1", "1", "10")  # ascending, as the names show them
OTHER = "__other__"  # a tag value past the per-key cap, a tool name past the experiment's
ALL = ""  # the term for "every trace"
Threshold = Literal[">", ">=", "<", "<="]
OPERATORS: tuple[Threshold, ...] = (">", ">=", "<", "<=")
_OPERATORS: dict[str, Threshold] = {operator: operator for operator in OPERATORS}
TOOL_OUTCOMES = ("used", "error", "success")

Terms = dict[str, int]
ValuesOf = Callable[[str], list[str]]  # an assessment name → its stream dimensions in range


class CountedAs:
    """How the aggregates name a trace's tag values and tool names: as they are here; past
    the per-experiment caps as OTHER (``aggregator.deltas.Admitted``)."""

    def tag(self, key: str, value: str) -> str:
        return value

    def tool(self, name: str) -> str:
        return name


AS_SENT = CountedAs()


class DimensionError(ValueError):
    """A dimension that cannot be asked for: unknown, or its parameters missing or malformed."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: Literal["enum", "number"]
    enum_values: list[str] | None = None


@dataclass(frozen=True)
class Described:
    name: str
    display_name: str
    description: str
    parameters: list[Parameter]


@dataclass(frozen=True)
class Requested:
    """A dimension as asked: its family name, shown value, stream terms (None: the stream does
    not count it) and its parameters."""

    family: "Family" = field(repr=False, compare=False)
    name: str
    value: str
    terms: Terms | None
    parameters: dict[str, str]

    def without_terms(self) -> "Requested":
        return Requested(self.family, self.name, self.value, None, self.parameters)

    def as_filter(self) -> Node:
        return self.family.as_filter(self)


class Family:
    """One family. ``owns`` an API name (``tools.web_search``); ``split`` a stream dimension."""

    def owns(self, name: str) -> bool:
        raise NotImplementedError

    def split(self, dimension: str) -> tuple[str, str] | None:
        """A stream dimension of this family as (API family name, value); None if not one."""
        raise NotImplementedError

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        raise NotImplementedError

    def describe(self, name: str, values: list[str]) -> Described:
        raise NotImplementedError

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        raise NotImplementedError

    def as_filter(self, requested: Requested) -> Node:
        raise NotImplementedError

    def parameters_of(self, value: str) -> dict[str, str]:
        """The parameters that ask for a stream dimension's value (as ``split`` shows it)."""
        return {"value": value}


class _Valued(Family):
    """``<name>=<value>`` families asked by value: status, span type, model."""

    def __init__(self, name: str, key: Key, title: str) -> None:
        self.name, self.key, self.title = name, key, title

    def dimension(self, value: str) -> str:
        return f"{self.name}={value}"

    def owns(self, name: str) -> bool:
        return name == self.name

    def split(self, dimension: str) -> tuple[str, str] | None:
        name, sep, value = dimension.partition("=")
        return (name, value) if sep and name == self.name else None

    def describe(self, name: str, values: list[str]) -> Described:
        return Described(
            name, self.title, f"Traces with this {self.title.lower()}", [_values(values)]
        )

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        value = _required(name, parameters, "value")
        return Requested(self, name, value, {self.dimension(value): 1}, parameters)

    def as_filter(self, requested: Requested) -> Node:
        return Comparison(self.key, "=", requested.parameters["value"])


class _Status(_Valued):
    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return [self.dimension(summary.status)]


class _SpanType(_Valued):
    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return {self.dimension(span.span_type) for span in spans}


class _Model(_Valued):
    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return {self.dimension(span.model) for span in spans if span.model is not None}


class _Prefixed(Family):
    """``<prefix><parameter>=<value>`` families: one per tool, tag key, assessment name."""

    prefix = ""

    def parameter(self, name: str) -> str:
        return name[len(self.prefix) :]

    def owns(self, name: str) -> bool:
        return name.startswith(self.prefix) and len(name) > len(self.prefix)

    def split(self, dimension: str) -> tuple[str, str] | None:
        if not self.owns(dimension):
            return None
        # tool names and tag keys may not hold "=", assessment names neither: the first splits
        name, sep, value = dimension.partition("=")
        return (name, value) if sep and self.owns(name) else None


class _Tools(_Prefixed):
    prefix = "tools."

    def dimension(self, tool: str, outcome: str) -> str:
        return f"{self.prefix}{tool}={outcome}"

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        out = set()
        for span in spans:
            if span.tool_name is not None:
                tool = counted.tool(span.tool_name)
                out.add(self.dimension(tool, "used"))
                if span.status == ERROR:
                    out.add(self.dimension(tool, "error"))
        return out

    def capped(self, dimension: str) -> tuple[str, str] | None:
        """(``tools.<name>=used``, ``tools.__other__=used``) of a tool dimension; else None."""
        split = self.split(dimension)
        if split is None:
            return None
        return self.dimension(self.parameter(split[0]), "used"), self.dimension(OTHER, "used")

    def describe(self, name: str, values: list[str]) -> Described:
        outcome = Parameter("value", "enum", list(TOOL_OUTCOMES))
        return Described(
            name,
            f"Tool {self.parameter(name)}",
            "Traces that called the tool, had a failing call, or called it without failure",
            [outcome],
        )

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        outcome = _required(name, parameters, "value")
        if outcome not in TOOL_OUTCOMES:
            raise DimensionError(
                f"dimension '{name}': value must be one of {', '.join(TOOL_OUTCOMES)}"
            )
        tool = self.parameter(name)
        if tool == OTHER:
            raise DimensionError(f"dimension '{name}': '{OTHER}' is not a tool name")
        used, error = self.dimension(tool, "used"), self.dimension(tool, "error")
        terms = {"used": {used: 1}, "error": {error: 1}, "success": {used: 1, error: -1}}
        return Requested(self, name, outcome, terms[outcome], parameters)

    def as_filter(self, requested: Requested) -> Node:
        used = Comparison(Key("span", "tool_name"), "=", self.parameter(requested.name))
        failing = Count(And((used, Comparison(Key("span", "status"), "=", ERROR))), ">", 0)
        outcomes: dict[str, Node] = {
            "used": used,
            "error": failing,
            "success": And((used, Not(failing))),
        }
        return outcomes[requested.parameters["value"]]


class _Tags(_Prefixed):
    prefix = "tags."

    def dimension(self, key: str, value: str) -> str:
        return f"{self.prefix}{key}={value}"

    def capped(self, dimension: str) -> tuple[str, str] | None:
        """(the dimension, ``tags.<key>=__other__``) of a tag dimension; None for another."""
        split = self.split(dimension)
        return (
            None if split is None else (dimension, self.dimension(self.parameter(split[0]), OTHER))
        )

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return {self.dimension(key, counted.tag(key, value)) for key, value in summary.tags.items()}

    def describe(self, name: str, values: list[str]) -> Described:
        return Described(
            name, f"Tag {self.parameter(name)}", "Traces with this tag value", [_values(values)]
        )

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        value = _required(name, parameters, "value")
        if value == OTHER:
            raise DimensionError(f"dimension '{name}': '{OTHER}' is not a tag value")
        return Requested(self, name, value, {f"{name}={value}": 1}, parameters)

    def as_filter(self, requested: Requested) -> Node:
        key = Key("tags", self.parameter(requested.name))
        return Comparison(key, "=", requested.parameters["value"])


class _Thresholded(Family):
    """Integer-valued facts counted above fixed thresholds: ``> t`` is stored for the listed t,
    ``>= t`` is ``> ceil(t) - 1``, and ``<``, ``<=`` are complements."""

    thresholds: tuple[int, ...] = ()
    pattern = re.compile("")

    def above(self, name: str, threshold: int) -> str:
        raise NotImplementedError

    def _name(self, match: re.Match[str]) -> str:
        raise NotImplementedError

    def split(self, dimension: str) -> tuple[str, str] | None:
        match = self.pattern.match(dimension)
        return None if match is None else (self._name(match), f">{match['threshold']}")

    def parameters_of(self, value: str) -> dict[str, str]:
        return {"operator": ">", "threshold": value.removeprefix(">")}

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        operator, threshold = _threshold(name, parameters)
        strict = math.floor(threshold) if operator in (">", "<=") else math.ceil(threshold) - 1
        terms: Terms | None = None
        if strict in self.thresholds:
            above = self.above(name, strict)
            terms = {above: 1} if operator in (">", ">=") else {ALL: 1, above: -1}
        return Requested(self, name, f"{operator}{_shown(threshold)}", terms, parameters)


class _Latency(_Thresholded):
    thresholds = LATENCY_THRESHOLDS_MS
    pattern = re.compile(r"latency>(?P<threshold>\d+)$")

    def above(self, name: str, threshold: int) -> str:
        return f"latency>{threshold}"

    def _name(self, match: re.Match[str]) -> str:
        return "latency"

    def owns(self, name: str) -> bool:
        return name == "latency"

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return [self.above("latency", t) for t in self.thresholds if summary.execution_time_ms > t]

    def describe(self, name: str, values: list[str]) -> Described:
        return Described(
            name,
            "Latency",
            "Trace execution time in ms against a threshold; counted by the stream at "
            + ", ".join(map(str, self.thresholds)),
            [_THRESHOLD, _OPERATOR],
        )

    def as_filter(self, requested: Requested) -> Node:
        operator, threshold = _threshold(requested.name, requested.parameters)
        return Comparison(Key("trace", "execution_time_ms"), operator, threshold)


class _Cost(Family):
    """A trace's cost in USD (of its priced calls) against a threshold, counted above
    ``COST_THRESHOLDS_USD``; costs are whole pico-dollars, so ``>=`` and ``<`` of a listed
    threshold are not what the stream counts: the source of truth answers them."""

    pattern = re.compile(r"cost>(?P<threshold>[0-9.]+)$")
    levels = tuple((text, money.scaled(float(text))) for text in COST_THRESHOLDS_USD)

    def owns(self, name: str) -> bool:
        return name == "cost"

    def split(self, dimension: str) -> tuple[str, str] | None:
        match = self.pattern.match(dimension)
        return None if match is None else ("cost", f">{match['threshold']}")

    def parameters_of(self, value: str) -> dict[str, str]:
        return {"operator": ">", "threshold": value.removeprefix(">")}

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        cost = summary.cost
        if cost is None:
            return []
        return [f"cost>{text}" for text, pico in self.levels if cost > pico]

    def describe(self, name: str, values: list[str]) -> Described:
        return Described(
            name,
            "Cost",
            "Trace cost in USD against a threshold; counted by the stream at "
            + ", ".join(COST_THRESHOLDS_USD),
            [_THRESHOLD, _OPERATOR],
        )

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        operator, threshold = _threshold(name, parameters)
        pico = money.scaled(threshold)
        level = next((text for text, at in self.levels if at == pico), None)
        terms: Terms | None = None
        if level is not None and operator in (">", "<="):
            above = f"cost>{level}"
            terms = {above: 1} if operator == ">" else {ALL: 1, above: -1}
        return Requested(self, name, f"{operator}{_shown(threshold)}", terms, parameters)

    def as_filter(self, requested: Requested) -> Node:
        operator, threshold = _threshold(requested.name, requested.parameters)
        return Comparison(Key("trace", "cost"), operator, threshold)


class _SpanCount(_Thresholded):
    prefix = "span_count."
    thresholds = SPAN_COUNT_THRESHOLDS
    pattern = re.compile(r"count\(span\.type=(?P<kind>[^)]*)\)>(?P<threshold>\d+)$")

    def above(self, name: str, threshold: int) -> str:
        return f"count(span.type={name[len(self.prefix) :]})>{threshold}"

    def _name(self, match: re.Match[str]) -> str:
        return f"{self.prefix}{match['kind']}"

    def owns(self, name: str) -> bool:
        return name.startswith(self.prefix) and len(name) > len(self.prefix)

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        per_type: dict[str, int] = {}
        for span in spans:
            per_type[span.span_type] = per_type.get(span.span_type, 0) + 1
        return [
            self.above(f"{self.prefix}{kind}", t)
            for kind, n in per_type.items()
            for t in self.thresholds
            if n > t
        ]

    def duplicates_span_type(self, dimension: str) -> bool:
        """``count(span.type=X)>0`` is the same set as ``span.type=X``."""
        split = self.split(dimension)
        return split is not None and split[1] == ">0"

    def describe(self, name: str, values: list[str]) -> Described:
        kind = name[len(self.prefix) :]
        return Described(
            name,
            f"Number of {kind} spans",
            f"How many {kind} spans a trace has, against a threshold",
            [_THRESHOLD, _OPERATOR],
        )

    def as_filter(self, requested: Requested) -> Node:
        operator, threshold = _threshold(requested.name, requested.parameters)
        kind = requested.name[len(self.prefix) :]
        rounded = math.ceil(threshold) if operator in (">=", "<") else math.floor(threshold)
        return Count(Comparison(Key("span", "type"), "=", kind), operator, rounded)


class _Assessments(_Prefixed):
    """Added when feedback arrives; string values as they are, others (true, 4, 0.5) as JSON.
    A numeric threshold is the sum of the values in range that pass it."""

    prefix = "assessment."

    def dimension(self, name: str, value: object) -> str:
        shown = value if isinstance(value, str) else json.dumps(value)
        return f"{self.prefix}{name}={shown}"

    def of_trace(
        self, summary: TraceSummary, spans: list[SpanRecord], counted: CountedAs
    ) -> Iterable[str]:
        return {self.dimension(name, value) for name, value in summary.assessments}

    def describe(self, name: str, values: list[str]) -> Described:
        numeric = all(_is_number(v) for v in values)
        return Described(
            name,
            f"Assessment {self.parameter(name)}",
            "Traces whose assessment has this value"
            + (" or passes the threshold" if numeric else ""),
            [_THRESHOLD, _OPERATOR] if numeric else [_values(values)],
        )

    def request(self, name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
        prefix = f"{name}="
        if "operator" in parameters or "threshold" in parameters:
            operator, threshold = _threshold(name, parameters)
            terms = {}
            for dimension in values_of(self.parameter(name)):
                number = _number(dimension[len(prefix) :])
                if number is not None and _passes(number, operator, threshold):
                    terms[dimension] = 1
            return Requested(self, name, f"{operator}{_shown(threshold)}", terms, parameters)
        value = _required(name, parameters, "value")
        return Requested(self, name, value, {f"{prefix}{value}": 1}, parameters)

    def as_filter(self, requested: Requested) -> Node:
        key = Key("assessment", self.parameter(requested.name))
        parameters = requested.parameters
        if "operator" in parameters or "threshold" in parameters:
            operator, threshold = _threshold(requested.name, parameters)
            return Comparison(key, operator, threshold)
        shown = parameters["value"]
        try:
            value = json.loads(shown)
        except ValueError:
            value = shown
        if not isinstance(value, bool | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            return Comparison(key, "=", shown)
        # the stream shows 4 and "4" alike, so the dimension holds both
        return Or((Comparison(key, "=", value), Comparison(key, "=", shown)))


STATUS = _Status("status", Key("trace", "status"), "Trace status")
SPAN_TYPE = _SpanType("span.type", Key("span", "type"), "Span type")
MODEL = _Model("model", Key("span", "model"), "Model")
TOOLS = _Tools()
TAGS = _Tags()
LATENCY = _Latency()
COST = _Cost()
SPAN_COUNT = _SpanCount()
ASSESSMENTS = _Assessments()
FAMILIES: tuple[Family, ...] = (
    STATUS,
    SPAN_TYPE,
    MODEL,
    TOOLS,
    TAGS,
    LATENCY,
    COST,
    SPAN_COUNT,
    ASSESSMENTS,
)


def of_trace(
    summary: TraceSummary,
    spans: Iterable[SpanRecord],
    counted: CountedAs = AS_SENT,
) -> set[str]:
    """Every stream dimension of a trace; ``counted`` names values past the caps OTHER."""
    listed = list(spans)
    return {d for family in FAMILIES for d in family.of_trace(summary, listed, counted)}


def capped(dimension: str) -> tuple[str, str] | None:
    """For a dimension whose value may be past a cap (a tag value, a tool name): (the
    dimension its value is counted by, the one counting every value past the cap together),
    e.g. (``tools.x=used``, ``tools.__other__=used``) for ``tools.x=error``; else None."""
    return TAGS.capped(dimension) or TOOLS.capped(dimension)


def is_overflow(dimension: str) -> bool:
    """Values past a cap, counted together: no value a request can name."""
    pair = capped(dimension)
    return pair is not None and pair[0] == pair[1]


def split(dimension: str) -> tuple[Family, str, str] | None:
    """A stream dimension as (its family, the API's family name, value)."""
    for family in FAMILIES:
        parts = family.split(dimension)
        if parts is not None:
            return family, *parts
    return None


def partner(dimension: str) -> Requested | None:
    """A stream dimension as the request that asks for it (a correlation partner the dashboard
    can make its slice, or turn into a filter); None if it is no family's."""
    parts = split(dimension)
    if parts is None:
        return None
    family, name, value = parts
    return Requested(family, name, value, None, family.parameters_of(value))


def request(name: str, parameters: dict[str, str], values_of: ValuesOf) -> Requested:
    """An API dimension as terms; ``values_of(name)``: the stream dimensions of an assessment's
    values in range. Raises DimensionError for an unknown name or bad parameters."""
    for family in FAMILIES:
        if family.owns(name):
            return family.request(name, parameters, values_of)
    raise DimensionError(
        f"unknown dimension '{name}'; expected status, span.type, model, latency, "
        "tools.<name>, tags.<key>, span_count.<span type> or assessment.<name>"
    )


def describe(name: str, values: list[str]) -> Described:
    for family in FAMILIES:
        if family.owns(name):
            return family.describe(name, values)
    raise DimensionError(f"unknown dimension '{name}'")


def count(terms: Terms, occurrences: Mapping[str, float], total: int) -> int:
    return int(sum(c * (total if d == ALL else occurrences.get(d, 0)) for d, c in terms.items()))


def joint(
    first: Terms,
    second: Terms,
    occurrences: Mapping[str, float],
    partners: Callable[[str], Mapping[str, float]],
    total: int,
) -> int:
    """|first ∩ second| from ``partners(d)``: dimension → traces having both it and ``d``."""
    out = 0.0
    for d1, c1 in first.items():
        for d2, c2 in second.items():
            both: float
            if d1 == ALL:
                both = total if d2 == ALL else occurrences.get(d2, 0)
            elif d2 == ALL or d1 == d2:
                both = occurrences.get(d1, 0)
            else:
                both = partners(d1).get(d2, 0)
            out += c1 * c2 * both
    return int(out)


_THRESHOLD = Parameter("threshold", "number")
_OPERATOR = Parameter("operator", "enum", list(OPERATORS))


def _values(values: list[str]) -> Parameter:
    return Parameter("value", "enum", values)


def _required(name: str, parameters: dict[str, str], key: str) -> str:
    value = parameters.get(key)
    if value is None or value == "":
        raise DimensionError(f"dimension '{name}' needs the parameter '{key}'")
    return value


def _threshold(name: str, parameters: dict[str, str]) -> tuple[Threshold, float]:
    operator = _OPERATORS.get(_required(name, parameters, "operator"))
    if operator is None:
        raise DimensionError(f"dimension '{name}': operator must be one of {', '.join(OPERATORS)}")
    raw = _required(name, parameters, "threshold")
    number = _number(raw)
    if number is None:
        raise DimensionError(f"dimension '{name}': threshold must be a number, not {raw!r}")
    return operator, number


def _passes(number: float, operator: str, threshold: float) -> bool:
    return {
        ">": number > threshold,
        ">=": number >= threshold,
        "<": number < threshold,
        "<=": number <= threshold,
    }[operator]


def _number(text: str) -> float | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text not in ("nan", "inf", "-inf", "NaN", "Infinity", "-Infinity")


def _shown(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)
