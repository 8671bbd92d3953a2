"""A request's time range and bucketing, resolved to periods and the stored buckets in each."""

import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from trace_insights.core.buckets import Resolution
from trace_insights.core.periods import (
    Tile,
    Unit,
    align,
    count_periods,
    period_start,
    periods,
    tile,
)

MAX_PERIODS = 5_000
_ORDER = (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY)


class TooManyPeriods(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    start_ms: int  # the range as answered: aligned to the stored buckets
    end_ms: int
    labels: list[int]  # each period's start (epoch ms), the series' ``time_bucket``
    tiles: list[list[Tile]]  # the stored buckets of each period
    edges: Resolution  # the coarsest grid a boundary had to be moved to
    periods: list[tuple[int, int]]  # each period as asked (clipped to the range)
    asked: list[int]  # each period's start as asked: the labels of an exact answer
    moved: bool  # a boundary between two periods had to be moved: the tiles are not the periods

    def all_tiles(self) -> list[Tile]:
        return [t for tiles in self.tiles for t in tiles]


def resolve(
    start_ms: int,
    end_ms: int,
    unit: Unit | None,
    zone: ZoneInfo,
    retention_ms: dict[Resolution, int],
    finest: Resolution = Resolution.MINUTE,
    now_ms: int | None = None,
) -> Window:
    """``unit`` None: the whole range as one period. ``retention_ms``: how long each stored
    resolution is kept; ``finest``: the finest one the answer may read (co-occurrences exist
    from hours up)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    used: set[Resolution] = set()

    def grid(t: int) -> Resolution:
        for resolution in _ORDER[_ORDER.index(finest) :]:
            if resolution is Resolution.DAY or t >= now - retention_ms[resolution]:
                return resolution
        return Resolution.DAY

    def on_grid(t: int, up: bool = False) -> int:
        aligned = align(t, grid, up)
        if aligned != t:
            used.add(grid(t))
        return aligned

    if unit is None:
        spans = [(start_ms, end_ms)]
    elif count_periods(start_ms, end_ms, unit) > MAX_PERIODS:
        raise TooManyPeriods(
            f"the range holds more than {MAX_PERIODS} {unit} buckets; use a coarser time_bucket"
        )
    else:
        spans = periods(start_ms, end_ms, unit, zone)
    labels, asked, tiles, moved = [], [], [], False
    for index, (first, last) in enumerate(spans):
        lo = on_grid(first)
        hi = on_grid(last, up=True) if index == len(spans) - 1 else on_grid(last)
        asked.append(first if unit is None else period_start(first, unit, zone))
        if index > 0 and lo != first:  # labelled where its buckets start, not as asked
            moved = True
            labels.append(lo)
        else:
            labels.append(asked[-1])
        tiles.append(tile(lo, hi) if hi > lo else [])
    edges = max(used, key=_ORDER.index) if used else finest
    return Window(
        on_grid(start_ms), on_grid(end_ms, up=True), labels, tiles, edges, spans, asked, moved
    )
