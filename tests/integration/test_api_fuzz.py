"""schemathesis over the API's own OpenAPI, against ``up`` holding traffic: whatever a client
sends that the schema allows (and much it does not), no operation answers a 5xx or hangs.
A timezone past 255 bytes once made three operations answer 500 (issue 15). Bounded and
derandomized here; ``bench/fuzz.py`` runs it long and random."""

import sys

import pytest

from tests.fuzzing import fuzz_api
from tests.support import (
    ROOT,
    export_spans,
    sdk_spans,
    service_env,
    start_up,
    traces_counted,
    wait_for,
)

pytestmark = pytest.mark.integration
EXAMPLES = 25  # per operation and generation mode
EXPERIMENT = "0"  # the default experiment: generated ids often name it


def test_no_request_gets_a_server_error_or_hangs(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))

    up = start_up(tmp_path / "data", service_env(trace_idle_timeout_s=3))
    try:
        export_spans(up.otlp_url, sdk_spans(20, seed=15), EXPERIMENT)
        wait_for(lambda: traces_counted(up.api_url, EXPERIMENT) == 20, 60, "the traffic")
        sent, problems = fuzz_api(up.api_url, EXAMPLES, derandomize=True)
        assert not problems, "\n".join(problems)
        assert sent > 1000, "every operation was fuzzed"
    finally:
        assert up.stop() == 0, "up stops cleanly after the fuzzing"
