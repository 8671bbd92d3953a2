"""What the fuzz tests and ``bench/fuzz.py`` share: hypothesis strategies for OTLP/JSON bodies
and filter strings, and schemathesis over a running API's OpenAPI — driven through its Python
API (each operation's case strategy, positive and negative), so that every operation is fuzzed
from one running deployment."""

import string
from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

TIMEOUT_S = 10  # a reply slower than this is a hang
OTLP_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
    "values",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "status",
    "code",
    "message",
    "events",
    "links",
    "scope",
    "version",
    "timeUnixNano",
    "droppedAttributesCount",
]
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "5b8efff798038103d269b633813fc60c",
            "eee19b7ec3c1b174",
            "\ud800",
            "\x00",
            "1700000000000000000",
            "18446744073709551615",
            "-1",
            "1e30",
        ]
    )
)
JSON = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(OTLP_KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)

TOKENS = [
    "span.name",
    "span.type",
    "trace.status",
    "trace.execution_time_ms",
    "tags.env",
    "feedback.ok",
    "span.attributes['k']",
    "count(",
    "(",
    ")",
    "AND",
    "OR",
    "NOT",
    "=",
    "!=",
    "<",
    ">=",
    "LIKE",
    "ILIKE",
    "IN",
    ",",
    "'LLM'",
    "'a\\'",
    "'%x_'",
    "5",
    "99999999999999999999",
    "1e400",
    "-3",
    "true",
    "'\x00'",
    "`k`",
    "\\",
]
FILTERS = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join) | st.text(
    alphabet=string.printable, max_size=40
)


def fuzz_api(
    api_url: str,
    examples: int,
    derandomize: bool,
    progress: Callable[[str], None] = lambda label: None,
) -> tuple[int, list[str]]:
    """(cases sent, problems: each a 5xx or hang with its curl command, one per operation and
    mode at most)."""
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    sent, problems = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        progress(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=derandomize,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                try:
                    response = case.call(timeout=TIMEOUT_S)
                except Exception as exc:  # a timeout or a dropped connection
                    raise AssertionError(f"{exc!r}: {case.as_curl_command()}") from exc
                if response.status_code >= 500:
                    raise AssertionError(f"{response.status_code}: {case.as_curl_command()}")

            try:
                check()
            except AssertionError as exc:  # hypothesis reports the shrunk case
                problems.append(f"{operation.label} ({mode.value}): {exc}")
            except Unsatisfiable:  # no input to make invalid (none, or free-form strings)
                assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, problems
