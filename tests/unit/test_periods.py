"""Insight periods in a time zone, across DST changes, and the stored buckets that tile them."""

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from trace_insights.core.buckets import Resolution
from trace_insights.core.periods import (
    Unit,
    align,
    next_period,
    period_start,
    periods,
    tile,
    zone_of,
)

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
SANTIAGO = ZoneInfo("America/Santiago")
H = 3_600_000


def ms(text: str, zone: ZoneInfo) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def test_days_start_at_local_midnight_and_last_23_or_25_hours_across_dst():
    spring = period_start(ms("2026-03-29 12:00", BERLIN), Unit.DAY, BERLIN)  # clocks 02→03
    assert spring == ms("2026-03-29 00:00", BERLIN)
    assert next_period(spring, Unit.DAY, BERLIN) - spring == 23 * H
    autumn = period_start(ms("2026-10-25 12:00", BERLIN), Unit.DAY, BERLIN)  # clocks 03→02
    assert next_period(autumn, Unit.DAY, BERLIN) - autumn == 25 * H
    assert period_start(ms("2026-11-01 23:59", NEW_YORK), Unit.DAY, NEW_YORK) == ms(
        "2026-11-01 00:00", NEW_YORK
    )


def test_a_midnight_skipped_by_dst_starts_the_day_at_the_first_instant_that_exists():
    # Chile moves clocks from 00:00 to 01:00 on 2026-09-06
    start = period_start(ms("2026-09-06 15:00", SANTIAGO), Unit.DAY, SANTIAGO)
    assert datetime.fromtimestamp(start / 1000, SANTIAGO).hour == 1
    assert next_period(start, Unit.DAY, SANTIAGO) - start == 23 * H


def test_weeks_start_on_monday_local_midnight():
    start = period_start(ms("2026-11-22 10:00", NEW_YORK), Unit.WEEK, NEW_YORK)  # a Sunday
    local = datetime.fromtimestamp(start / 1000, NEW_YORK)
    assert (local.weekday(), local.hour, local.day) == (0, 0, 16)
    # the week holding the DST change (Sunday 2026-11-01) is 169 hours long
    dst_week = period_start(ms("2026-10-28 10:00", NEW_YORK), Unit.WEEK, NEW_YORK)
    assert next_period(dst_week, Unit.WEEK, NEW_YORK) - dst_week == 169 * H


def test_hours_follow_half_hour_offsets():
    start = period_start(ms("2026-05-01 10:45", KOLKATA), Unit.HOUR, KOLKATA)
    assert start == ms("2026-05-01 10:00", KOLKATA)
    assert start % H == 30 * 60_000  # on the half hour in UTC


def test_periods_cover_the_range_clipped_and_zero_gaps():
    start, end = ms("2026-03-28 18:00", BERLIN), ms("2026-03-30 06:00", BERLIN)
    out = periods(start, end, Unit.DAY, BERLIN)
    assert [p[0] for p in out] == [
        start,
        ms("2026-03-29 00:00", BERLIN),
        ms("2026-03-30 00:00", BERLIN),
    ]
    assert out[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(out))


def test_tiles_are_the_fewest_buckets_that_cover_exactly():
    start = ms("2026-03-01 23:10", UTC)
    end = ms("2026-03-04 01:30", UTC)
    tiles = tile(start, end)
    assert tiles[0] == (Resolution.MINUTE, start)
    assert (Resolution.DAY, ms("2026-03-02 00:00", UTC)) in tiles
    assert (Resolution.DAY, ms("2026-03-03 00:00", UTC)) in tiles
    assert (Resolution.HOUR, ms("2026-03-04 00:00", UTC)) in tiles
    assert len(tiles) == 50 + 2 + 1 + 30
    covered = sum({"m": 60_000, "h": H, "d": 24 * H}[r] for r, _ in tiles)
    assert covered == end - start
    assert all(r is not Resolution.DAY for r, _ in tile(start, end, Resolution.HOUR))


def test_edges_move_to_the_finest_resolution_still_kept():
    def finest(t: int) -> Resolution:
        return Resolution.MINUTE if t >= ms("2026-03-10 00:00", UTC) else Resolution.HOUR

    assert align(ms("2026-03-11 10:17", UTC) + 5, finest) == ms("2026-03-11 10:17", UTC)
    assert align(ms("2026-03-11 10:17", UTC) + 5, finest, up=True) == ms("2026-03-11 10:18", UTC)
    assert align(ms("2026-03-01 10:17", UTC), finest) == ms("2026-03-01 10:00", UTC)


def test_unknown_zones_are_refused_by_name():
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone_of("Mars/Olympus")
    with pytest.raises(ValueError):
        zone_of("../etc/passwd")
