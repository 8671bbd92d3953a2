"""Merged t-digests of stored buckets, kept between requests.

Reading every Kafka partition's copy of every bucket in a range, and merging them, was most of
a latency answer (7 days at hour buckets over 12 partitions: thousands of blobs). A bucket's
merged digest is kept until the experiment's change stream names that bucket — the
announcement written atomically with the deltas, which live feeds follow too — so an answer
from the cache is exactly as fresh as one read from the store.
"""

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

from fastdigest import TDigest

from trace_insights.core import sketch
from trace_insights.core.buckets import WIDTH_MS, Resolution
from trace_insights.stores.base import FIRST_CHANGE, AggregateStore

_FOLLOW_BATCH = 1000
_MISS = object()


@dataclass(frozen=True)
class Location:
    """A digests hash of one experiment's stored bucket."""

    experiment_id: str
    resolution: Resolution
    start_ms: int
    key: str

    @property
    def bucket(self) -> tuple[str, str, int]:
        return self.experiment_id, self.resolution.value, self.start_ms


class DigestCache:
    """A bounded, least-recently-used map from digests hash to merged digest (None for a
    bucket with nothing stored), invalidated by the change streams; ``capacity`` 0 reads
    through."""

    def __init__(
        self, store: AggregateStore, retention_ms: dict[Resolution, int], capacity: int
    ) -> None:
        self._store = store
        self._retention_ms = retention_ms
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Location, TDigest | None]] = OrderedDict()
        self._by_bucket: dict[tuple[str, str, int], set[str]] = {}
        self._cursors: dict[str, str] = {}  # experiment → last change applied to the cache
        self._epoch = 0  # how many times the cache followed changes
        self._touched: dict[tuple[str, str, int], int] = {}  # bucket → epoch it last changed
        self._reading: Counter[int] = Counter()  # epochs of reads in flight

    def read(self, locations: list[Location]) -> list[TDigest | None]:
        """Each location's digest, merged over the partitions' copies."""
        if not self._capacity:
            return self._load(locations)
        with self._lock:
            followed = self._follow({location.experiment_id for location in locations})
            epoch = self._epoch
            self._reading[epoch] += 1
            now = time.time() * 1000
            found = [self._get(location, now) for location in locations]
        missing = [i for i, hit in enumerate(found) if hit is _MISS]
        loaded: list[TDigest | None] | None = None
        try:
            loaded = self._load([locations[i] for i in missing]) if missing else []
        finally:
            with self._lock:
                for i, digest in zip(missing, loaded or [], strict=True):
                    found[i] = digest
                    # kept unless a change since this read's follow may have missed it
                    if locations[i].experiment_id in followed and not self._changed_after(
                        locations[i], epoch
                    ):
                        self._put(locations[i], digest)
                self._release(epoch)
        return found  # type: ignore[return-value]

    def _load(self, locations: list[Location]) -> list[TDigest | None]:
        copies = self._store.read_blob_hashes([location.key for location in locations])
        return [sketch.merged(found) if found else None for found in copies]

    def _follow(self, experiments: set[str]) -> set[str]:
        """Drops what the experiments' changes name; returns the experiments the cache may
        keep digests of (those whose change stream it follows)."""
        for experiment in experiments - set(self._cursors):
            last = self._store.last_change(experiment)
            if last != FIRST_CHANGE:  # an empty stream gives nothing to check its trimming against
                self._cursors[experiment] = last
        pending = {e: self._cursors[e] for e in experiments if e in self._cursors}
        changed = False
        while pending:
            changes = self._store.changes(pending, _FOLLOW_BATCH)
            seen: Counter[str] = Counter()
            for change in changes:
                seen[change.experiment_id] += 1
                changed = True
                if change.lost:  # followed again from its next entry (if any yet)
                    self._forget_experiment(change.experiment_id)
                    del self._cursors[change.experiment_id]
                    continue
                for resolution, start in change.buckets:
                    self._forget((change.experiment_id, resolution, start))
                self._cursors[change.experiment_id] = change.id
            pending = {e: self._cursors[e] for e, n in seen.items() if n >= _FOLLOW_BATCH}
        if changed:
            self._epoch += 1
        return {e for e in experiments if e in self._cursors}

    def _forget(self, bucket: tuple[str, str, int]) -> None:
        self._touched[bucket] = self._epoch + 1
        for key in self._by_bucket.pop(bucket, ()):
            del self._entries[key]

    def _forget_experiment(self, experiment: str) -> None:
        self._touched[_whole(experiment)] = self._epoch + 1
        for bucket in [b for b in self._by_bucket if b[0] == experiment]:
            self._forget(bucket)

    def _changed_after(self, location: Location, epoch: int) -> bool:
        bucket, whole = location.bucket, _whole(location.experiment_id)
        return max(self._touched.get(bucket, -1), self._touched.get(whole, -1)) > epoch

    def _get(self, location: Location, now_ms: float) -> TDigest | object | None:
        entry = self._entries.get(location.key)
        if entry is None:
            return _MISS
        width = WIDTH_MS[location.resolution]
        if now_ms >= location.start_ms + width + self._retention_ms[location.resolution]:
            self._evict(location.key)  # the store has expired the bucket by now
            return _MISS
        self._entries.move_to_end(location.key)
        return entry[1]

    def _put(self, location: Location, digest: TDigest | None) -> None:
        if location.key in self._entries:
            return
        self._entries[location.key] = (location, digest)
        self._by_bucket.setdefault(location.bucket, set()).add(location.key)
        while len(self._entries) > self._capacity:
            self._evict(next(iter(self._entries)))

    def _evict(self, key: str) -> None:
        location, _ = self._entries.pop(key)
        held = self._by_bucket[location.bucket]
        held.discard(key)
        if not held:
            del self._by_bucket[location.bucket]

    def _release(self, epoch: int) -> None:
        """Ends a read; forgets when buckets changed once no read in flight needs to know."""
        self._reading[epoch] -= 1
        if not self._reading[epoch]:
            del self._reading[epoch]
        oldest = min(self._reading, default=self._epoch + 1)
        for bucket in [b for b, at in self._touched.items() if at <= oldest]:
            del self._touched[bucket]


def _whole(experiment: str) -> tuple[str, str, int]:
    """Where a change to every bucket of an experiment (a lost stretch of its stream) is noted."""
    return experiment, "", -1
