"""The API's cache of merged bucket digests answers exactly what reading the store answers."""

import threading
from collections import Counter

from tests.support import make_whole
from trace_insights.api.digests import DigestCache, Location
from trace_insights.core import keys, sketch
from trace_insights.core.buckets import Resolution
from trace_insights.stores.base import Update
from trace_insights.stores.memory import MemoryStore

E = "7"
HOUR = Resolution.HOUR
FOREVER = {r: 10**15 for r in Resolution}


class CountingStore(MemoryStore):
    """Counts the blob reads that reach the store."""

    def __init__(self) -> None:
        super().__init__()
        self.blob_reads = 0

    def read_blob_hashes(self, keys_: list[str]) -> list[dict[str, bytes]]:
        self.blob_reads += len(keys_)
        return super().read_blob_hashes(keys_)


def _location(start: int, experiment: str = E) -> Location:
    return Location(experiment, HOUR, start, keys.digests(experiment, HOUR, start, "latency"))


def _write(store: CountingStore, partition: int, start: int, values: list[float]) -> None:
    """One partition's copy of the hour's digest (replaced whole, as the aggregator does)."""
    if store.generations([E]) == [None]:  # new, or dropped: a rebuild of nothing
        make_whole(store, E)
    fence = store.fences(E).get(partition, -1)
    store.apply(
        Update(
            E,
            partition,
            fence,
            fence + 1,
            counters=Counter({(keys.bucket(E, HOUR, start), "traces"): len(values)}),
            blobs={(_location(start).key, str(partition)): sketch.dump(sketch.of_values(values))},
            changed=[(HOUR.value, start)],
        )
    )


def _quantiles(digests: list) -> list:  # type: ignore[type-arg]
    return [None if d is None else (d.n_values, d.quantile(0.5)) for d in digests]


def test_the_cache_answers_as_the_store_does_through_changes_drops_and_eviction():
    store = CountingStore()
    cache, uncached = DigestCache(store, FOREVER, 3), DigestCache(store, FOREVER, 0)
    _write(store, 0, 0, [1.0, 2.0])
    _write(store, 1, 0, [3.0])
    _write(store, 0, 3_600_000, [10.0])
    wanted = [_location(0), _location(3_600_000), _location(7_200_000)]

    def same() -> list:  # type: ignore[type-arg]
        answer = _quantiles(cache.read(wanted))
        assert answer == _quantiles(uncached.read(wanted))
        return answer

    assert same() == [(3, 2.0), (1, 10.0), None]
    reads = store.blob_reads
    assert _quantiles(cache.read(wanted)) == [(3, 2.0), (1, 10.0), None]
    assert store.blob_reads == reads, "a second read comes from the cache, empty buckets too"

    _write(store, 1, 3_600_000, [20.0, 30.0])
    assert same()[1] == (3, 20.0), "a change to the bucket reaches the next answer"
    store.drop(E, 7_200_000, 10_800_000)
    _write(store, 2, 7_200_000, [5.0])
    assert same()[2] == (1, 5.0)
    store.drop(E, None, None)  # everything: the cache is told it lost track
    assert same() == [None, None, None]
    assert same() == [None, None, None], "an empty stream: read through until it has entries"
    _write(store, 0, 0, [4.0])
    assert same() == [(1, 4.0), None, None]
    reads = store.blob_reads
    assert same() == [(1, 4.0), None, None]
    assert store.blob_reads == reads + len(wanted), "followed again, cached again"

    many = [_location(start * 3_600_000) for start in range(10)]
    cache.read(many)
    assert len(cache._entries) == 3, "bounded by its capacity"


def test_a_change_during_a_read_is_not_kept_past_it():
    store = CountingStore()
    cache = DigestCache(store, FOREVER, 100)
    _write(store, 0, 0, [1.0])
    started, release = threading.Event(), threading.Event()
    original = store.read_blob_hashes

    def slow(keys_: list[str]) -> list[dict[str, bytes]]:
        found = original(keys_)  # read before the change below
        started.set()
        release.wait(5)
        return found

    store.read_blob_hashes = slow  # type: ignore[method-assign]
    reader = threading.Thread(target=cache.read, args=([_location(0)],))
    reader.start()
    started.wait(5)
    store.read_blob_hashes = original  # type: ignore[method-assign]
    _write(store, 0, 0, [1.0, 2.0])
    # a concurrent request follows the change before the slow read ends
    assert _quantiles(cache.read([_location(3_600_000)])) == [None]
    release.set()
    reader.join()
    assert _quantiles(cache.read([_location(0)])) == [(2, 1.5)], "the stale read was not kept"


def test_expired_buckets_are_not_served_from_the_cache():
    store = CountingStore()
    cache = DigestCache(store, {r: 0 for r in Resolution}, 100)
    _write(store, 0, 0, [1.0])
    cache.read([_location(0)])
    reads = store.blob_reads
    cache.read([_location(0)])
    assert store.blob_reads == reads + 1, "past its retention a bucket is read again"
