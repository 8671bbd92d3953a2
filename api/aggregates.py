"""Reads a window's aggregates for a set of experiments: one pipelined round trip per kind of
key, summed (counters) or merged (digests) per period. Never touches traces."""

from collections import defaultdict
from collections.abc import Callable, Mapping

from fastdigest import TDigest

from trace_insights.api.digests import DigestCache, Location
from trace_insights.api.window import Window
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.stores.base import AggregateStore

KeyOf = Callable[[str, Resolution, int], str]  # (experiment, resolution, start) → key


class Figures(defaultdict[str, float]):
    """The counters and sums of stored buckets, by field name; a field not there is 0."""

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        super().__init__(int, values or {})  # int: counters stay exact past 2^53


class Aggregates:
    def __init__(
        self,
        store: AggregateStore,
        digests: DigestCache,
        experiment_ids: list[str],
        window: Window,
    ) -> None:
        self.store = store
        self._digests = digests
        self.experiment_ids = experiment_ids
        self.window = window
        # read before anything else: an answer is whole only if the same generation was
        # there before and after it was read (``incomplete``)
        self._generations = store.generations(experiment_ids)
        self._closing: list[dict[str, float]] | None = None

    def counters(self, key_of: KeyOf, fields: list[str] | None = None) -> list[Figures]:
        """Per period, the hashes at ``key_of`` (only ``fields`` of them, if given) summed over
        experiments and stored buckets."""
        owners, names = self._keys(key_of)
        found = (
            self.store.read_hashes(names)
            if fields is None
            else self.store.read_fields(names, fields)
        )
        out = [Figures() for _ in self.window.tiles]
        for period, values in zip(owners, found, strict=True):
            if values:
                add(out[period], values)
        return out

    def digests(self, key_of: KeyOf) -> list[TDigest | None]:
        """Per period, the merged digest of every partition's copy (None where empty)."""
        return self.digests_by({"": key_of})[""]

    def digests_by(self, key_ofs: dict[str, KeyOf]) -> dict[str, list[TDigest | None]]:
        """``digests`` of several metrics (a tool each, say), read in one round trip."""
        owners: list[tuple[str, int]] = []
        locations: list[Location] = []
        for label, key_of in key_ofs.items():
            periods, found_at = self._locations(key_of)
            owners += [(label, period) for period in periods]
            locations += found_at
        found: dict[str, list[list[TDigest]]] = {
            label: [[] for _ in self.window.tiles] for label in key_ofs
        }
        for (label, period), digest in zip(owners, self._digests.read(locations), strict=True):
            if digest is not None:
                found[label][period].append(digest)
        return {
            label: [_merged(digests) for digests in per_period]
            for label, per_period in found.items()
        }

    def distinct(self, key_of: KeyOf) -> int:
        """Distinct values over the whole window (HyperLogLog union on Redis)."""
        return self.store.count_distinct(self._keys(key_of)[1])

    def watermark(self) -> int | None:
        marks = [int(meta[fields.WATERMARK]) for meta in self._metas() if fields.WATERMARK in meta]
        return max(marks) if marks else None

    def incomplete(self) -> list[str]:
        """The experiments whose aggregates were not whole at some moment of the reading (the
        store lost them, and a rebuild is under way): their figures may be short."""
        after = [meta.get(fields.GENERATION) for meta in self._metas()]
        return [
            e
            for e, before, now in zip(self.experiment_ids, self._generations, after, strict=True)
            if before is None or before != now
        ]

    def _metas(self) -> list[dict[str, float]]:
        """The experiments' meta hashes, read once after the answer's aggregates."""
        if self._closing is None:
            self._closing = self.store.read_hashes([keys.meta(e) for e in self.experiment_ids])
        return self._closing

    def _keys(self, key_of: KeyOf) -> tuple[list[int], list[str]]:
        periods, locations = self._locations(key_of)
        return periods, [location.key for location in locations]

    def _locations(self, key_of: KeyOf) -> tuple[list[int], list[Location]]:
        """Every stored bucket of every experiment in the window, with its period."""
        periods, locations = [], []
        for period, tiles in enumerate(self.window.tiles):
            for resolution, start in tiles:
                for experiment in self.experiment_ids:
                    periods.append(period)
                    key = key_of(experiment, resolution, start)
                    locations.append(Location(experiment, resolution, start, key))
        return periods, locations


def add(into: Figures, values: Mapping[str, float]) -> None:
    """Counters and sums add up."""
    for name, value in values.items():
        into[name] += value


def total(per_period: list[Figures]) -> Figures:
    out = Figures()
    for counts in per_period:
        add(out, counts)
    return out


def _merged(digests: list[TDigest]) -> TDigest | None:
    """One digest of a period; a period of one stored bucket shares the cached digest (read
    only)."""
    if len(digests) == 1:
        return digests[0]
    return sketch.combined(digests) if digests else None


def combined(per_period: list[TDigest | None]) -> TDigest | None:
    found = [digest for digest in per_period if digest is not None]
    return sketch.combined(found) if found else None
