"""API dimensions (a name and string parameters) as sets of traces the aggregates can count.

A dimension the stream counts is a signed sum of stream dimensions (``trace_insights.core.
dimensions``) and, for complements, the set of all traces (``ALL``): ``latency <= 1000`` is
ALL - ``latency>1000``, ``tools.x = success`` is ``tools.x=used`` - ``tools.x=error``, and a
numeric assessment threshold is the sum of its values that pass. Counts and intersections
are then bilinear in occurrence and co-occurrence counts, so NPMI needs no trace scan. A
dimension outside the stream's thresholds (``latency > 1234``) is answered from the source of
truth instead (``exact`` is None).
"""

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from trace_insights.api.errors import invalid
from trace_insights.core import dimensions as stream
from trace_insights.core.filters import And, Comparison, Count, Key, Node, Not

ALL = ""  # the term for "every trace"
OPERATORS = (">", ">=", "<", "<=")
TOOL_OUTCOMES = ("used", "error", "success")
_SPAN_COUNT = re.compile(r"count\(span\.type=(?P<kind>[^)]*)\)>(?P<threshold>\d+)$")
_LATENCY = re.compile(r"latency>(?P<threshold>\d+)$")


@dataclass(frozen=True)
class Requested:
    """A dimension as asked: its family name, shown value, stream terms (or None) and what the
    source of truth needs to answer it (``family``, ``parameters``)."""

    name: str
    value: str
    terms: dict[str, int] | None
    parameters: dict[str, str]


@dataclass(frozen=True)
class Parsed:
    """A stream dimension split into the API's family name and value."""

    family: str
    value: str


def parse(dimension: str) -> Parsed | None:
    """``tags.env=prod`` → (``tags.env``, ``prod``); ``latency>500`` → (``latency``, ``>500``);
    ``count(span.type=LLM)>2`` → (``span_count.LLM``, ``>2``)."""
    if match := _LATENCY.match(dimension):
        return Parsed("latency", f">{match['threshold']}")
    if match := _SPAN_COUNT.match(dimension):
        return Parsed(f"span_count.{match['kind']}", f">{match['threshold']}")
    family, sep, value = dimension.partition("=")
    if not sep:
        return None
    return Parsed(family, value)


def resolve(
    name: str, parameters: dict[str, str], assessment_values: Callable[[str], list[str]]
) -> Requested:
    """``assessment_values(name)``: the stream dimensions of that assessment's values in range.
    Raises ApiError (400) for an unknown name or missing or malformed parameters."""
    if name in ("status", "span.type", "model") or name.startswith("tags."):
        value = _required(name, parameters, "value")
        if name.startswith("tags.") and value == stream.OTHER:
            raise invalid(f"dimension '{name}': '{stream.OTHER}' is not a tag value")
        return Requested(name, value, {f"{name}={value}": 1}, parameters)
    if name.startswith("tools.") and len(name) > 6:
        outcome = _required(name, parameters, "value")
        if outcome not in TOOL_OUTCOMES:
            raise invalid(f"dimension '{name}': value must be one of {', '.join(TOOL_OUTCOMES)}")
        tool = name[6:]
        used, error = stream.tool(tool, "used"), stream.tool(tool, "error")
        terms = {"used": {used: 1}, "error": {error: 1}, "success": {used: 1, error: -1}}[outcome]
        return Requested(name, outcome, terms, parameters)
    if name == "latency":
        operator, threshold = _threshold(name, parameters)
        return Requested(
            name,
            f"{operator}{_shown(threshold)}",
            _above(operator, threshold, stream.LATENCY_THRESHOLDS_MS, stream.latency_above),
            parameters,
        )
    if name.startswith("span_count.") and len(name) > 11:
        operator, threshold = _threshold(name, parameters)
        kind = name[11:]
        above = _above(
            operator,
            threshold,
            stream.SPAN_COUNT_THRESHOLDS,
            lambda t: stream.span_count_above(kind, t),
        )
        return Requested(name, f"{operator}{_shown(threshold)}", above, parameters)
    if name.startswith("assessment.") and len(name) > 11:
        return _assessment(name, parameters, assessment_values(name[11:]))
    raise invalid(
        f"unknown dimension '{name}'; expected status, span.type, model, latency, "
        "tools.<name>, tags.<key>, span_count.<span type> or assessment.<name>"
    )


def count(terms: dict[str, int], occurrences: Mapping[str, float], total: int) -> int:
    return int(sum(c * (total if d == ALL else occurrences.get(d, 0)) for d, c in terms.items()))


def joint(
    first: dict[str, int],
    second: dict[str, int],
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


def _assessment(name: str, parameters: dict[str, str], values: list[str]) -> Requested:
    prefix = f"{name}="
    if "operator" in parameters or "threshold" in parameters:
        operator, threshold = _threshold(name, parameters)
        terms = {}
        for dimension in values:
            number = _number(dimension[len(prefix) :])
            if number is not None and _compare(number, operator, threshold):
                terms[dimension] = 1
        return Requested(name, f"{operator}{_shown(threshold)}", terms, parameters)
    value = _required(name, parameters, "value")
    return Requested(name, value, {f"{prefix}{value}": 1}, parameters)


def _required(name: str, parameters: dict[str, str], key: str) -> str:
    value = parameters.get(key)
    if value is None or value == "":
        raise invalid(f"dimension '{name}' needs the parameter '{key}'")
    return value


def _threshold(name: str, parameters: dict[str, str]) -> tuple[str, float]:
    operator = _required(name, parameters, "operator")
    if operator not in OPERATORS:
        raise invalid(f"dimension '{name}': operator must be one of {', '.join(OPERATORS)}")
    raw = _required(name, parameters, "threshold")
    number = _number(raw)
    if number is None:
        raise invalid(f"dimension '{name}': threshold must be a number, not {raw!r}")
    return operator, number


def _above(
    operator: str, threshold: float, stored: Iterable[int], dimension: Callable[[int], str]
) -> dict[str, int] | None:
    """Integer-valued facts (ms, counts): ``> t`` is stored for the listed t; ``>= t`` is
    ``> ceil(t) - 1``; ``<`` and ``<=`` are complements. None if the needed t is not stored."""
    strict = math.floor(threshold) if operator in (">", "<=") else math.ceil(threshold) - 1
    if strict not in set(stored):
        return None
    above = dimension(strict)
    return {above: 1} if operator in (">", ">=") else {ALL: 1, above: -1}


def _compare(number: float, operator: str, threshold: float) -> bool:
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


def _shown(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


def as_filter(requested: Requested) -> Node:
    """The dimension in the filter language, so the source of truth answers it through the
    one filter compiler (``tools.x = error`` needs one span that is both: a count)."""
    name, parameters = requested.name, requested.parameters
    if name in ("status", "span.type", "model") or name.startswith("tags."):
        key = {
            "status": Key("trace", "status"),
            "span.type": Key("span", "type"),
            "model": Key("span", "model"),
        }.get(name) or Key("tags", name[5:])
        return Comparison(key, "=", parameters["value"])
    if name.startswith("tools."):
        used = Comparison(Key("span", "tool_name"), "=", name[6:])
        failing = Count(And((used, Comparison(Key("span", "status"), "=", "ERROR"))), ">", 0)
        outcome = parameters["value"]
        outcomes: dict[str, Node] = {
            "used": used,
            "error": failing,
            "success": And((used, Not(failing))),
        }
        return outcomes[outcome]
    if name == "latency" or name.startswith("span_count."):
        operator, threshold = _threshold(name, parameters)
        if name == "latency":
            return Comparison(Key("trace", "execution_time_ms"), operator, threshold)  # type: ignore[arg-type]
        return Count(
            Comparison(Key("span", "type"), "=", name[11:]),
            operator,
            math.ceil(threshold) if operator in (">=", "<") else math.floor(threshold),
        )
    key = Key("assessment", name[11:])
    if "operator" in parameters or "threshold" in parameters:
        operator, threshold = _threshold(name, parameters)
        return Comparison(key, operator, threshold)  # type: ignore[arg-type]
    shown = parameters["value"]
    try:
        value = json.loads(shown)
    except ValueError:
        value = shown
    if not isinstance(value, bool | int | float | str):
        value = shown
    return Comparison(key, "=", value)
