"""One log line per failure kind per interval; the lines after it say how often it happened."""

import logging

import pytest

from trace_insights.core.logs import Throttled


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("trace_insights.core.logs.time.monotonic", lambda: now[0])
    throttled = Throttled(logging.getLogger("t"), interval_s=60)
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(50):
            throttled.log(logging.WARNING, "outage:redis", "dependency unavailable")
            throttled.log(logging.WARNING, "outage:database", "dependency unavailable")
            now[0] += 0.25
        assert [r.fields["kind"] for r in caplog.records] == ["outage:redis", "outage:database"]
        now[0] += 60
        throttled.log(logging.WARNING, "outage:redis", "dependency unavailable")
    last = caplog.records[-1]
    assert (last.fields["kind"], last.fields["repeated"]) == ("outage:redis", 49)
