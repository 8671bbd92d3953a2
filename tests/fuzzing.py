"""schemathesis over a running API's OpenAPI, shared by the fuzz test and ``bench/fuzz.py``.
Driven through its Python API (each operation's case strategy, positive and negative) so that
every operation is fuzzed from one running deployment."""

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

TIMEOUT_S = 10  # a reply slower than this is a hang


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
            @settings(max_examples=examples, deadline=None, derandomize=derandomize,
                      suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
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
            except Unsatisfiable:  # no parameters: nothing to make invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, problems
