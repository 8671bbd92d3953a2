"""The aggregate store contract, shared by the Redis and the in-memory implementation.

``apply`` is atomic and fenced: it applies an experiment's deltas and advances that
experiment's fence for a Kafka partition only if the fence still holds ``expected_fence``
(the value the deltas were computed against); otherwise it changes nothing and returns False.
Counters are exact integers (a field that reaches 0 is removed: absent and 0 are one thing);
sums are floats; blobs are replaced whole. In the same atomic
step, an update that ``changed`` buckets appends one entry to the experiment's change stream
(what live feeds and alert rules follow), so every applied update is announced exactly once.

An experiment's aggregates are *whole* while its meta hash holds a generation, which only a
rebuild from the source of truth writes (for a new experiment too: a rebuild of nothing). A
store that restarted empty, or lost the experiment's hash slot, has no generation, so live
updates are refused (``Incomplete``) until a rebuild, holding the experiment's rebuild claim,
has replayed the truth and written a new one. Readers treat an answer as whole only if the
same generation was there before and after they read it.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

NO_FENCE = -1  # a partition's fence before anything of it was applied
FIRST_CHANGE = "0-0"  # the change id before any change (Redis streams' own)
CHANGES_KEPT = 10_000  # entries per experiment's change stream (older ones are trimmed)
CLAIM_TTL_MS = 60_000  # a rebuild claim not renewed for this long lets another rebuild start


@dataclass(frozen=True)
class Change:
    """An entry of an experiment's change stream: ``id`` orders entries (Redis stream ids).
    A ``lost`` entry stands for entries a follower can no longer read (trimmed, or the
    experiment's aggregates dropped): anything may have changed."""

    experiment_id: str
    id: str
    buckets: list[tuple[str, int]]
    watermark_ms: int
    lost: bool = False


class Incomplete(Exception):
    """The experiment's aggregates are not whole (or the rebuild's claim was lost): nothing was
    applied."""

    def __init__(self, experiment_id: str, reason: str) -> None:
        super().__init__(f"experiment {experiment_id}: {reason}")
        self.experiment_id = experiment_id


@dataclass
class Update:
    experiment_id: str
    partition: int
    expected_fence: int
    fence: int
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)  # HINCRBY
    sums: dict[tuple[str, str], float] = field(default_factory=dict)  # HINCRBYFLOAT
    maximums: dict[tuple[str, str], float] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # HSET (hash, field)
    distinct: dict[str, set[str]] = field(default_factory=dict)  # PFADD
    expire_at_ms: dict[str, int] = field(default_factory=dict)
    changed: list[tuple[str, int]] = field(default_factory=list)  # (resolution, bucket start)
    dirty: set[str] = field(default_factory=set)  # added to the experiment's dirty digests
    clean: set[str] = field(default_factory=set)  # taken out of them (recomputed)
    token: int | None = None  # a rebuild's claim: applies to aggregates that are not whole

    def count(self, key: str, counts: Counter[str], expire_at_ms: int) -> None:
        """Add a hash's counts, and give the hash its expiry."""
        for name, delta in counts.items():
            self.counters[(key, name)] += delta
        self.expire_at_ms[key] = expire_at_ms

    def add_sum(self, key: str, name: str, value: float) -> None:
        self.sums[(key, name)] = self.sums.get((key, name), 0.0) + value

    def add_max(self, key: str, name: str, value: float) -> None:
        current = self.maximums.get((key, name))
        if current is None or value > current:
            self.maximums[(key, name)] = value


class AggregateStore(Protocol):
    def fences(self, experiment_id: str) -> dict[int, int]:
        """Kafka partition → last applied offset."""
        ...

    def apply(self, update: Update) -> bool:
        """False if the fence moved; raises ``Incomplete`` if a live update meets aggregates
        that are not whole, or a rebuild's update no longer holds the claim."""
        ...

    def claim_rebuild(self, experiment_id: str, token: int) -> bool:
        """Take the experiment's rebuild claim unless another holds it; each of the rebuild's
        applies renews it for ``CLAIM_TTL_MS``, so a rebuilder that died lets another take
        over."""
        ...

    def finish_rebuild(self, experiment_id: str, token: int) -> bool:
        """If ``token`` still holds the claim: release it, and make the aggregates whole with
        ``token`` as their generation."""
        ...

    def release_rebuild(self, experiment_id: str, token: int) -> None:
        """Give the claim up (a rebuild that failed), if ``token`` still holds it."""
        ...

    def generations(self, experiment_ids: list[str]) -> list[int | None]:
        """Each experiment's generation; None where its aggregates are not whole."""
        ...

    def read_hash(self, key: str) -> dict[str, float]:
        """A hash of numbers (empty if missing)."""
        ...

    def read_hashes(self, keys: list[str]) -> list[dict[str, float]]: ...

    def read_fields(self, keys: list[str], names: list[str]) -> list[dict[str, float]]:
        """Only ``names`` of each hash (those present): series read a few counters of many
        buckets, and parsing whole hashes would dominate."""
        ...

    def read_blob_hashes(self, keys: list[str]) -> list[dict[str, bytes]]:
        """Hashes of blobs, field → bytes (empty where missing)."""
        ...

    def read_blob_fields(self, locations: list[tuple[str, str]]) -> list[bytes | None]:
        """The blobs at (hash key, field) locations, None where missing."""
        ...

    def dirty(self, experiment_id: str) -> set[str]:
        """The experiment's dirty digests (``Update.dirty`` members)."""
        ...

    def admit(self, entries: list[tuple[str, str, int]]) -> list[bool]:
        """For each (registry key, value, cap) — a tag key's values, an experiment's tool
        names (``core.keys``), all of one experiment —: is the value counted by name?
        Atomically, a value is admitted if its registry holds it or has fewer than ``cap``
        values (and is then added). A registry only grows, so a decision never changes later."""
        ...

    def count_distinct(self, keys: list[str]) -> int:
        """Estimated distinct values across the keys' HyperLogLogs."""
        ...

    def experiments(self) -> set[str]: ...

    def last_change(self, experiment_id: str) -> str:
        """The id of the experiment's latest change (FIRST_CHANGE if none): where a new follower
        starts."""
        ...

    def changes(self, after: dict[str, str], limit: int = 1000) -> list[Change]:
        """Entries after each experiment's id, oldest first per experiment; never blocks. An
        id that is no longer in its stream (FIRST_CHANGE always is) starts with a ``lost`` entry."""
        ...

    def report_progress(self, partition: int, lag: int, at_ms: int) -> None:
        """An aggregator's consumer lag on a partition (outside any fence: informational)."""
        ...

    def progress(self) -> dict[int, tuple[int, int]]:
        """Kafka partition → (consumer lag, when reported, epoch ms)."""
        ...

    def drop(self, experiment_id: str, start_ms: int | None, end_ms: int | None) -> None:
        """Delete the experiment's aggregates of buckets starting in [start_ms, end_ms), and
        announce those buckets on the change stream; with no range, every key of the
        experiment, fences included, and every entry of the change stream. Either way the
        aggregates are no longer whole (their generation goes) until a rebuild finishes. Tag
        and tool name registries are kept, so a rebuild admits the same capped values live
        ingestion did (unless the store lost them). Change ids never go back: after a drop,
        entries get ids above every id given before it, so a follower behind the drop is told
        ``lost`` and then reads each later entry."""
        ...

    def close(self) -> None: ...
