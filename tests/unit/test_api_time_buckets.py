"""Series bucketing in time zones across DST changes, at the API: buckets start at local
midnight (weeks on Monday), are zero-filled and sorted, and count each trace in its local day."""

import itertools
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded

VOLUME = "/api/3.0/mlflow/traces/insights/traffic-cost/volume"
FOREVER = {"ttl_minute_hours": 1e7, "ttl_hour_days": 1e6, "ttl_day_days": 1e6}


def _ns(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1e9)


@pytest.mark.parametrize(
    ("zone", "unit", "first", "hours"),
    [
        ("Europe/Berlin", "day", "2026-03-27 20:00", 96),  # spring forward on 03-29
        ("America/New_York", "day", "2026-10-30 18:00", 96),  # fall back on 11-01
        ("America/New_York", "week", "2026-10-20 00:00", 24 * 20),
        ("Asia/Kolkata", "hour", "2026-05-01 09:00", 6),
        ("UTC", "day", "2026-03-27 20:00", 96),
    ],
)
def test_buckets_follow_the_zone(tmp_path, zone, unit, first, hours):
    with embedded(tmp_path, **FOREVER) as api:
        start_ns = _ns(first, zone)
        step_ns = hours * 3_600_000_000_000 // 60  # 60 traces over the range
        spans = sdk_spans(60, seed=9, end_ns=lambda i: start_ns + (i + 1) * step_ns)
        publish_to_bus(api.bus, spans, "tz")
        api.drain()
        starts = {}
        for span in spans:
            trace = span.context.trace_id
            starts[trace] = min(starts.get(trace, span.start_time), span.start_time)
        tz = ZoneInfo(zone)

        def local_start(ns: int) -> int:
            moment = datetime.fromtimestamp(ns / 1e9, tz)
            if unit == "hour":
                moment = moment.replace(minute=0, second=0, microsecond=0)
            else:
                moment = datetime(moment.year, moment.month, moment.day, tzinfo=tz)
                if unit == "week":
                    moment = datetime.combine(
                        (moment - timedelta(days=moment.weekday())).date(), moment.time(), tz
                    )
            return int(moment.timestamp() * 1000)

        expected = Counter(local_start(ns) for ns in starts.values())
        body = {
            "experiment_ids": ["tz"],
            "time_bucket": unit,
            "timezone": zone,
            "start_time": start_ns // 1_000_000 - 3_600_000,
            "end_time": (start_ns + hours * 3_600_000_000_000) // 1_000_000 + 3_600_000,
        }
        answer = api.client.post(VOLUME, json=body).json()
        series = answer["time_series"]
        labels = [point["time_bucket"] for point in series]
        assert labels == sorted(labels)
        assert {p["time_bucket"]: p["count"] for p in series if p["count"]} == dict(expected)
        assert answer["summary"]["count"] == 60
        for label in labels[1:]:  # every label is a local period start
            moment = datetime.fromtimestamp(label / 1000, tz)
            assert (moment.minute, moment.second) == (0, 0)
            if unit in ("day", "week"):
                assert moment.hour == 0
            if unit == "week":
                assert moment.weekday() == 0
        if zone == "Europe/Berlin":
            widths = {b - a for a, b in itertools.pairwise(labels[1:])}
            assert 23 * 3_600_000 in widths, "the spring-forward day is 23 hours"
        if zone == "America/New_York" and unit == "day":
            widths = {b - a for a, b in itertools.pairwise(labels[1:])}
            assert 25 * 3_600_000 in widths, "the fall-back day is 25 hours"
