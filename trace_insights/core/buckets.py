"""Time buckets of the aggregates: UTC, keyed by their start in epoch milliseconds."""

from enum import StrEnum


class Resolution(StrEnum):
    MINUTE = "m"
    HOUR = "h"
    DAY = "d"


WIDTH_MS = {Resolution.MINUTE: 60_000, Resolution.HOUR: 3_600_000, Resolution.DAY: 86_400_000}


def bucket_start(timestamp_ms: int, resolution: Resolution) -> int:
    width = WIDTH_MS[resolution]
    return timestamp_ms - timestamp_ms % width


def bucket_starts(start_ms: int, end_ms: int, resolution: Resolution) -> list[int]:
    """Every bucket overlapping [start_ms, end_ms)."""
    width = WIDTH_MS[resolution]
    first = bucket_start(start_ms, resolution)
    return list(range(first, max(end_ms, first + 1), width))
