"""The periods of an insights answer — minute, hour, day or week in the caller's time zone —
and the stored UTC buckets that tile them.

Days start at local midnight and weeks on Monday at local midnight, found through the zone's
rules at that date, so a day is 23 or 25 hours long across a DST change. Stored buckets are
UTC minutes, hours and days; a period boundary that falls inside a stored bucket whose finer
resolution has expired is moved back to that bucket's start (consistently, so neighbouring
periods never share a trace).
"""

import functools
import zoneinfo
from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from trace_insights.core.buckets import WIDTH_MS, Resolution, bucket_start

_MINUTE, _HOUR = WIDTH_MS[Resolution.MINUTE], WIDTH_MS[Resolution.HOUR]
_COARSEST_FIRST = (Resolution.DAY, Resolution.HOUR, Resolution.MINUTE)


class Unit(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


Tile = tuple[Resolution, int]  # a stored bucket: resolution and UTC start


def period_start(timestamp_ms: int, unit: Unit, zone: ZoneInfo) -> int:
    if unit is Unit.MINUTE:
        return bucket_start(timestamp_ms, Resolution.MINUTE)
    if unit is Unit.HOUR:
        offset = _offset_ms(timestamp_ms, zone)
        return timestamp_ms - (timestamp_ms + offset) % _HOUR
    day = _local_date(timestamp_ms, zone)
    if unit is Unit.WEEK:
        day -= timedelta(days=day.weekday())
    return _midnight(day, zone)


def next_period(start_ms: int, unit: Unit, zone: ZoneInfo) -> int:
    if unit is Unit.MINUTE:
        return start_ms + _MINUTE
    if unit is Unit.HOUR:
        return start_ms + _HOUR
    days = 7 if unit is Unit.WEEK else 1
    return _midnight(_local_date(start_ms, zone) + timedelta(days=days), zone)


def periods(start_ms: int, end_ms: int, unit: Unit, zone: ZoneInfo) -> list[tuple[int, int]]:
    """(start, end) of every period overlapping [start_ms, end_ms), clipped to it."""
    out = []
    current = period_start(start_ms, unit, zone)
    while current < end_ms:
        following = next_period(current, unit, zone)
        out.append((max(current, start_ms), min(following, end_ms)))
        current = following
    return out


def count_periods(start_ms: int, end_ms: int, unit: Unit) -> int:
    """An upper bound of ``len(periods(...))``, computed without walking them."""
    width = {Unit.MINUTE: _MINUTE, Unit.HOUR: _HOUR, Unit.DAY: 23 * _HOUR, Unit.WEEK: 167 * _HOUR}
    return (end_ms - start_ms) // width[unit] + 2


def align(timestamp_ms: int, finest: Callable[[int], Resolution], up: bool = False) -> int:
    """``timestamp_ms`` on the grid of the finest stored resolution kept at that time; down
    (or ``up``, for a range end that should include the bucket it falls in)."""
    resolution = finest(timestamp_ms)
    floor = bucket_start(timestamp_ms, resolution)
    if up and floor != timestamp_ms:
        return floor + WIDTH_MS[resolution]
    return floor


def tile(start_ms: int, end_ms: int, coarsest: Resolution = Resolution.DAY) -> list[Tile]:
    """The fewest stored buckets, no coarser than ``coarsest``, that exactly cover
    [start_ms, end_ms); both ends must be on the finest grid (callers ``align`` them)."""
    allowed = _COARSEST_FIRST[_COARSEST_FIRST.index(coarsest) :]
    out = []
    current = start_ms
    while current < end_ms:
        for resolution in allowed:
            width = WIDTH_MS[resolution]
            if current % width == 0 and current + width <= end_ms:
                out.append((resolution, current))
                current += width
                break
        else:
            raise ValueError(f"{start_ms}..{end_ms} is not on the grid of {allowed[-1]} buckets")
    return out


def zone_of(name: str) -> ZoneInfo:
    """Raises ValueError for a name the IANA database does not know (checked against its list
    of names first: ZoneInfo would read any path-like name as a file)."""
    if name not in _zone_names():
        raise ValueError(f"unknown time zone {name[:80]!r}")
    return ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _offset_ms(timestamp_ms: int, zone: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(timestamp_ms // 1000, zone).utcoffset()
    return int((offset or timedelta()).total_seconds() * 1000)


def _local_date(timestamp_ms: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(timestamp_ms // 1000, zone).date()


def _midnight(day: date, zone: ZoneInfo) -> int:
    """The first instant of ``day`` in ``zone``. A midnight skipped by a DST change resolves
    (fold=0) to the first instant that exists, which is where that day starts."""
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(local.timestamp()) * 1000
