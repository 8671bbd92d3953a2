"""The in-memory aggregate store of the embedded mode: the Redis store's semantics in dicts."""

import bisect
import fnmatch
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from trace_insights.core import keys
from trace_insights.stores.base import (
    CHANGES_KEPT,
    CLAIM_TTL_MS,
    FIRST_CHANGE,
    NO_FENCE,
    Change,
    Incomplete,
    Update,
)


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """``clock``: epoch seconds, for expiry and change ids (as the Redis server's clock)."""
        self._clock = clock
        self._hashes: dict[str, dict[str, float]] = defaultdict(dict)
        self._blobs: dict[str, dict[str, bytes]] = defaultdict(dict)
        self._sets: dict[str, set[str]] = defaultdict(set)
        self._distinct: dict[str, set[str]] = defaultdict(set)
        self._expiry: dict[str, int] = {}
        self._experiments: set[str] = set()
        self._progress: dict[int, tuple[int, int]] = {}
        self._changes: dict[str, list[Change]] = defaultdict(list)
        self._claims: dict[str, tuple[int, float]] = {}  # experiment → (token, expires at, s)
        self._last_id = (0, 0)
        self._lock = threading.Lock()

    def fences(self, experiment_id: str) -> dict[int, int]:
        with self._lock:
            fence = self._hashes.get(keys.fence(experiment_id), {})
            return {int(partition): int(offset) for partition, offset in fence.items()}

    def claim_rebuild(self, experiment_id: str, token: int) -> bool:
        with self._lock:
            if self._claim(experiment_id) is not None:
                return False
            self._claims[experiment_id] = (token, self._clock() + CLAIM_TTL_MS / 1000)
            return True

    def finish_rebuild(self, experiment_id: str, token: int) -> bool:
        with self._lock:
            if self._claim(experiment_id) != token:
                return False
            del self._claims[experiment_id]
            self._hashes[keys.meta(experiment_id)][keys.fields.GENERATION] = token
            return True

    def release_rebuild(self, experiment_id: str, token: int) -> None:
        with self._lock:
            if self._claim(experiment_id) == token:
                del self._claims[experiment_id]

    def generations(self, experiment_ids: list[str]) -> list[int | None]:
        with self._lock:
            metas = [self._hashes.get(keys.meta(e), {}) for e in experiment_ids]
            found = [meta.get(keys.fields.GENERATION) for meta in metas]
            return [None if generation is None else int(generation) for generation in found]

    def _claim(self, experiment_id: str) -> int | None:
        claim = self._claims.get(experiment_id)
        if claim is None or claim[1] <= self._clock():
            return None
        return claim[0]

    def apply(self, update: Update) -> bool:
        e = update.experiment_id
        with self._lock:
            if update.token is None:
                if keys.fields.GENERATION not in self._hashes.get(keys.meta(e), {}):
                    raise Incomplete(e, "the aggregates are not whole")
            elif self._claim(e) != update.token:
                raise Incomplete(e, "the rebuild's claim was lost")
            fence = self._hashes[keys.fence(e)]
            if fence.get(str(update.partition), NO_FENCE) != update.expected_fence:
                return False
            if update.token is not None:
                self._claims[e] = (update.token, self._clock() + CLAIM_TTL_MS / 1000)
            for key in update.expire_at_ms:
                self._live(key)  # an expired key restarts from nothing, as in Redis
            for (key, name), delta in update.counters.items():
                if not delta:
                    continue
                target = self._hashes[key]
                total = int(target.get(name, 0)) + delta
                if total:
                    target[name] = total
                else:
                    del target[name]
            for (key, name), value in update.sums.items():
                target = self._hashes[key]
                target[name] = float(target.get(name, 0.0)) + value
            for (key, name), value in update.maximums.items():
                target = self._hashes[key]
                if name not in target or value > target[name]:
                    target[name] = value
            for (key, name), blob in update.blobs.items():
                self._blobs[key][name] = blob
            for key, values in update.distinct.items():
                self._distinct[key].update(values)
            self._sets[keys.dirty(e)].update(update.dirty)
            self._sets[keys.dirty(e)].difference_update(update.clean)
            self._expiry.update(update.expire_at_ms)
            fence[str(update.partition)] = update.fence
            self._experiments.add(update.experiment_id)
            if update.changed:
                self._announce(update)
            return True

    def read_hash(self, key: str) -> dict[str, float]:
        return self.read_hashes([key])[0]

    def read_hashes(self, keys_: list[str]) -> list[dict[str, float]]:
        with self._lock:
            return [dict(self._hashes.get(key, {})) if self._live(key) else {} for key in keys_]

    def read_fields(self, keys_: list[str], names: list[str]) -> list[dict[str, float]]:
        wanted = set(names)
        return [
            {k: v for k, v in found.items() if k in wanted} for found in self.read_hashes(keys_)
        ]

    def read_blob_hashes(self, keys_: list[str]) -> list[dict[str, bytes]]:
        with self._lock:
            return [dict(self._blobs.get(key, {})) if self._live(key) else {} for key in keys_]

    def read_blob_fields(self, locations: list[tuple[str, str]]) -> list[bytes | None]:
        with self._lock:
            return [
                self._blobs.get(key, {}).get(name) if self._live(key) else None
                for key, name in locations
            ]

    def dirty(self, experiment_id: str) -> set[str]:
        with self._lock:
            return set(self._sets.get(keys.dirty(experiment_id), set()))

    def admit(self, entries: list[tuple[str, str, int]]) -> list[bool]:
        with self._lock:
            decisions = []
            for key, value, cap in entries:
                registry = self._sets[key]
                if value not in registry and len(registry) < cap:
                    registry.add(value)
                decisions.append(value in registry)
            return decisions

    def count_distinct(self, keys_: list[str]) -> int:
        """Exact here; Redis estimates (HyperLogLog, 0.81% standard error)."""
        with self._lock:
            live = [self._distinct.get(key, set()) for key in keys_ if self._live(key)]
            return len(set().union(*live))

    def experiments(self) -> set[str]:
        with self._lock:
            return set(self._experiments)

    def last_change(self, experiment_id: str) -> str:
        with self._lock:
            stream = self._changes.get(experiment_id)
            return stream[-1].id if stream else FIRST_CHANGE

    def changes(self, after: dict[str, str], limit: int = 1000) -> list[Change]:
        with self._lock:
            out = []
            for experiment_id, last in after.items():
                stream = self._changes.get(experiment_id, [])
                # ids grow along the stream: find the last entry read by bisection
                at = bisect.bisect_left(stream, _stream_id(last), key=lambda c: _stream_id(c.id))
                if at < len(stream) and stream[at].id == last:
                    at += 1
                elif last != FIRST_CHANGE:
                    out.append(Change(experiment_id, last, [], -1, lost=True))
                out.extend(stream[at : at + limit])
            return out

    def _announce(self, update: Update) -> None:
        watermark = int(
            update.maximums.get((keys.meta(update.experiment_id), keys.fields.WATERMARK), -1)
        )
        self._append_change(update.experiment_id, list(update.changed), watermark)

    def _append_change(
        self, experiment_id: str, buckets: list[tuple[str, int]], watermark: int
    ) -> None:
        """Stream ids as Redis makes them: milliseconds, then a sequence within the ms."""
        now = int(self._clock() * 1000)
        self._last_id = (
            (now, 0) if now > self._last_id[0] else (self._last_id[0], self._last_id[1] + 1)
        )
        stream = self._changes[experiment_id]
        stream.append(
            Change(experiment_id, f"{self._last_id[0]}-{self._last_id[1]}", buckets, watermark)
        )
        del stream[:-CHANGES_KEPT]

    def report_progress(self, partition: int, lag: int, at_ms: int) -> None:
        with self._lock:
            self._progress[partition] = (lag, at_ms)

    def progress(self) -> dict[int, tuple[int, int]]:
        with self._lock:
            return dict(self._progress)

    def drop(self, experiment_id: str, start_ms: int | None, end_ms: int | None) -> None:
        pattern = keys.experiment_pattern(experiment_id)
        with self._lock:
            self._hashes.get(keys.meta(experiment_id), {}).pop(keys.fields.GENERATION, None)
            if start_ms is None or end_ms is None:
                self._changes[experiment_id].clear()  # ids go on from the last one
            dropped = set()
            for store in (self._hashes, self._blobs, self._sets, self._distinct):
                for key in [k for k in store if fnmatch.fnmatchcase(k, pattern)]:
                    if _in_range(key, start_ms, end_ms):
                        del store[key]
                        if (bucket := keys.bucket_of(key)) is not None:
                            dropped.add(bucket)
            if start_ms is not None and end_ms is not None and dropped:
                meta = self._hashes.get(keys.meta(experiment_id), {})
                watermark = int(meta.get(keys.fields.WATERMARK, -1))
                self._append_change(experiment_id, sorted(dropped), watermark)

    def close(self) -> None:
        pass

    def _live(self, key: str) -> bool:
        """Drop ``key`` if its time has come (as Redis does, lazily, when a key is touched)."""
        at = self._expiry.get(key)
        if at is None or at > self._clock() * 1000:
            return True
        for store in (self._hashes, self._blobs, self._distinct):
            store.pop(key, None)
        del self._expiry[key]
        return False


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _in_range(key: str, start_ms: int | None, end_ms: int | None) -> bool:
    if keys.is_registry(key):
        return False
    if start_ms is None or end_ms is None:
        return True
    bucket = keys.bucket_of(key)
    return bucket is not None and start_ms <= bucket[1] < end_ms
