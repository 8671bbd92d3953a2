"""The aggregate store contract, run against Redis and the in-memory store alike."""

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support import make_whole
from trace_insights.core import keys
from trace_insights.stores.base import CLAIM_TTL_MS, Incomplete, Update
from trace_insights.stores.memory import MemoryStore


def _experiment(store) -> str:  # type: ignore[no-untyped-def]
    """A new experiment whose aggregates are whole (live updates apply)."""
    return make_whole(store, f"x{uuid.uuid4().hex[:10]}")


def _key(experiment: str, name: str) -> str:
    return f"ti:{{e:{experiment}}}:{name}"


def test_apply_counts_sums_extremes_blobs_sets_and_fence(store):
    e = _experiment(store)
    h = _key(e, "b:h:0")
    update = Update(
        e,
        3,
        -1,
        41,
        counters=Counter({(h, "traces"): 2, (h, "status:OK"): 1}),
        sums={(h, "latency_sum"): 12.5},
        maximums={(h, "latency_max"): 9.5},
        blobs={(_key(e, "td:h:0:latency"), "3"): b"\x01\x00\xff"},
        distinct={_key(e, "hll:h:0:env"): {"a", "b", "c"}},
        expire_at_ms={h: int(time.time() * 1000) + 60_000},
    )
    assert store.apply(update)
    second = Update(
        e,
        3,
        41,
        57,
        counters=Counter({(h, "traces"): 1}),
        sums={(h, "latency_sum"): 0.5},
        maximums={(h, "latency_max"): 5.0},
        distinct={_key(e, "hll:h:1:env"): {"c", "d"}},
    )
    assert store.apply(second)
    assert store.read_hash(h) == {
        "traces": 3,
        "status:OK": 1,
        "latency_sum": 13.0,
        "latency_max": 9.5,
    }
    assert store.fences(e) == {3: 57}
    assert store.read_blob_fields([(_key(e, "td:h:0:latency"), "3"), (h, "nope")]) == [
        b"\x01\x00\xff",
        None,
    ]
    assert store.read_blob_hashes([_key(e, "td:h:0:latency")]) == [{"3": b"\x01\x00\xff"}]
    assert store.count_distinct([_key(e, "hll:h:0:env"), _key(e, "hll:h:1:env")]) == 4
    assert e in store.experiments()


def test_a_stale_fence_changes_nothing(store):
    e = _experiment(store)
    h = _key(e, "b:h:0")
    assert store.apply(Update(e, 0, -1, 10, counters=Counter({(h, "traces"): 1})))
    assert not store.apply(Update(e, 0, -1, 12, counters=Counter({(h, "traces"): 1})))
    assert not store.apply(Update(e, 0, 9, 12, counters=Counter({(h, "traces"): 1})))
    assert store.read_hash(h) == {"traces": 1}
    assert store.fences(e) == {0: 10}
    # fences are per partition
    assert store.apply(Update(e, 1, -1, 4, counters=Counter({(h, "traces"): 1})))
    assert store.fences(e) == {0: 10, 1: 4}


def test_expired_keys_disappear(store):
    e = _experiment(store)
    h = _key(e, "b:m:0")
    past = int(time.time() * 1000) - 1
    assert store.apply(
        Update(e, 0, -1, 1, counters=Counter({(h, "traces"): 1}), expire_at_ms={h: past})
    )
    assert store.read_hash(h) == {}


def test_drop_a_range_or_everything(store):
    e, other = _experiment(store), _experiment(store)
    day0, day1 = _key(e, "b:d:0"), _key(e, "b:d:86400000")
    for experiment, key in ((e, day0), (e, day1), (other, _key(other, "b:d:0"))):
        store.apply(
            Update(
                experiment,
                0,
                store.fences(experiment).get(0, -1),
                5,
                counters=Counter({(key, "traces"): 1}),
            )
        )
    store.drop(e, 0, 86_400_000)
    assert store.generations([e, other]) == [None, store.generations([other])[0]]
    make_whole(store, e)
    assert store.read_hash(day0) == {}
    assert store.read_hash(day1) == {"traces": 1}
    assert store.fences(e) == {0: 5}
    assert store.admit([(keys.tag_registry(e, "env"), "prod", 1)]) == [True]
    assert store.admit([(keys.tool_registry(e), "search", 1)]) == [True]
    store.drop(e, None, None)
    assert store.read_hash(day1) == {}
    assert store.fences(e) == {}
    env = keys.tag_registry(e, "env")
    assert store.admit([(env, "dev", 1), (env, "prod", 1)]) == [False, True]
    assert store.admit([(keys.tool_registry(e), "fetch", 1)]) == [False]  # kept by the drop
    assert store.read_hash(_key(other, "b:d:0")) == {"traces": 1}


def test_admission_is_first_come_up_to_each_cap_and_never_changes(store):
    e = _experiment(store)
    user, team, tools = (
        keys.tag_registry(e, "user"),
        keys.tag_registry(e, "team"),
        keys.tool_registry(e),
    )
    entries = [(user, "a", 2), (user, "b", 2), (user, "a", 2), (user, "c", 2), (team, "x", 2)]
    entries += [(tools, "a", 1), (tools, "b", 1)]
    assert store.admit(entries) == [True, True, True, False, True, True, False]
    assert store.admit([(user, "c", 2), (user, "b", 2), (tools, "b", 1)]) == [False, True, False]
    assert store.admit([(tools, "b", 3)]) == [True]  # a larger cap admits more
    assert store.admit([]) == []


def test_progress_reports_are_kept_per_partition(store):
    store.report_progress(3, 120, 1_000)
    store.report_progress(3, 0, 2_000)
    store.report_progress(11, 7, 1_500)
    progress = store.progress()
    assert progress[3] == (0, 2_000)
    assert progress[11] == (7, 1_500)


def test_each_applied_update_is_announced_once_in_order(store):
    e, other = _experiment(store), _experiment(store)
    h = _key(e, "b:h:0")
    assert store.last_change(e) == "0-0"
    first = Update(
        e,
        0,
        -1,
        5,
        counters=Counter({(h, "traces"): 1}),
        maximums={(_key(e, "meta"), "watermark"): 1234.0},
        changed=[("m", 0), ("h", 0)],
    )
    assert store.apply(first)
    stale = Update(e, 0, -1, 9, counters=Counter({(h, "traces"): 1}), changed=[("m", 60_000)])
    assert not store.apply(stale), "a fenced-out update changes nothing, announces nothing"
    quiet = Update(e, 1, -1, 3, counters=Counter({(h, "traces"): 1}))
    assert store.apply(quiet)
    second = Update(e, 0, 5, 8, counters=Counter({(h, "traces"): 1}), changed=[("m", 120_000)])
    assert store.apply(second)
    changes = store.changes({e: "0-0", other: "0-0"})
    assert [c.buckets for c in changes] == [[("m", 0), ("h", 0)], [("m", 120_000)]]
    assert changes[0].watermark_ms == 1234
    assert store.last_change(e) == changes[-1].id
    assert store.changes({e: changes[0].id})[0].id == changes[1].id
    assert store.changes({e: changes[1].id}) == []


@pytest.fixture
def one_millisecond(
    request: pytest.FixtureRequest, store: object
) -> Iterator[Callable[[str], object]]:
    """A store in which an experiment's change ids all fall in one millisecond, as a burst of
    updates (or a clock that stands still, or a failover to a server whose clock is behind)
    makes them: where ids taken from the clock alone would repeat or go back. The memory
    store's clock stands still; the Redis stream's last id is set an hour ahead of its server."""
    if isinstance(store, MemoryStore):
        frozen = MemoryStore(clock=lambda: 1_893_456_000.0)
        yield lambda experiment_id: frozen
        return
    raw = redis.Redis.from_url(request.getfixturevalue("redis_url"))

    def ahead(experiment_id: str) -> object:
        stream = keys.changes(experiment_id)
        raw.xadd(stream, {"c": "{}"}, id=f"{int(time.time() * 1000) + 3_600_000}-0")
        raw.xtrim(stream, maxlen=0)
        return store

    yield ahead
    raw.close()


def test_dropping_announces_the_buckets_and_a_follower_behind_a_drop_is_told(one_millisecond):
    e = f"x{uuid.uuid4().hex[:10]}"
    store = one_millisecond(e)
    make_whole(store, e)
    hour, day = _key(e, "b:h:3600000"), _key(e, "td:d:0:latency")
    assert store.apply(
        Update(
            e,
            0,
            -1,
            1,
            counters=Counter({(hour, "traces"): 1}),
            blobs={(day, "0"): b"\x01"},
            changed=[("h", 3_600_000)],
        )
    )
    cursor = store.last_change(e)
    store.drop(e, 0, 7_200_000)
    [dropped] = store.changes({e: cursor})
    assert not dropped.lost
    assert sorted(dropped.buckets) == [("d", 0), ("h", 3_600_000)]
    assert store.read_hash(hour) == {}
    store.drop(e, None, None)
    make_whole(store, e)
    assert store.apply(
        Update(e, 0, -1, 2, counters=Counter({(hour, "traces"): 1}), changed=[("h", 3_600_000)])
    )
    lost, after = store.changes({e: dropped.id})
    assert lost.lost and lost.id == dropped.id, "the entries it had not read are gone"
    assert after.buckets == [("h", 3_600_000)] and not after.lost
    assert _ordered(dropped.id) < _ordered(after.id), "ids go on past the drop"
    assert store.last_change(e) == after.id
    assert store.changes({e: after.id}) == []
    assert store.changes({e: "0-0"}) == [after], "a new follower reads what came after the drop"


def _ordered(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)


def test_live_updates_wait_until_a_rebuild_made_the_aggregates_whole(store):
    e = f"x{uuid.uuid4().hex[:10]}"
    h = _key(e, "b:h:0")
    live = Update(e, 0, -1, 3, counters=Counter({(h, "traces"): 1}))
    with pytest.raises(Incomplete):
        store.apply(live)  # a new experiment, or one the store lost: nothing is known whole
    assert store.read_hash(h) == {} and store.fences(e) == {} and store.generations([e]) == [None]
    assert store.claim_rebuild(e, 11)
    assert not store.claim_rebuild(e, 12), "one rebuild at a time"
    with pytest.raises(Incomplete):
        store.apply(Update(e, 0, -1, 3, counters=Counter({(h, "traces"): 1}), token=12))
    with pytest.raises(Incomplete):
        store.apply(live)  # still not whole while the rebuild runs
    assert store.apply(Update(e, 0, -1, 3, counters=Counter({(h, "traces"): 1}), token=11))
    assert not store.finish_rebuild(e, 12)
    assert store.generations([e]) == [None]
    assert store.finish_rebuild(e, 11)
    assert store.generations([e]) == [11]
    assert store.apply(Update(e, 0, 3, 4, counters=Counter({(h, "traces"): 1})))
    assert store.read_hash(h) == {"traces": 2}
    with pytest.raises(Incomplete):  # the claim is gone with the rebuild
        store.apply(Update(e, 0, 4, 5, counters=Counter({(h, "traces"): 1}), token=11))
    assert store.claim_rebuild(e, 13)
    store.drop(e, 0, 3_600_000)
    assert store.generations([e]) == [None], "a drop, even of a range, leaves them not whole"
    with pytest.raises(Incomplete):
        store.apply(Update(e, 0, 4, 5, counters=Counter({(h, "traces"): 1})))
    store.release_rebuild(e, 13)
    assert store.claim_rebuild(e, 14), "a released claim can be taken"
    store.drop(e, None, None)
    assert store.finish_rebuild(e, 14), "a full drop keeps the claim of the rebuild dropping"


def test_a_rebuild_claim_not_renewed_lets_another_take_over():
    now = [1_893_456_000.0]
    store = MemoryStore(clock=lambda: now[0])
    e = "stale"
    assert store.claim_rebuild(e, 1)
    h = _key(e, "b:h:0")
    assert store.apply(Update(e, 0, -1, 1, counters=Counter({(h, "traces"): 1}), token=1))
    now[0] += CLAIM_TTL_MS / 1000 - 1
    assert not store.claim_rebuild(e, 2), "each apply renewed it"
    now[0] += 2
    assert store.claim_rebuild(e, 2)
    with pytest.raises(Incomplete):
        store.apply(Update(e, 0, 1, 2, counters=Counter({(h, "traces"): 1}), token=1))
    assert not store.finish_rebuild(e, 1), "the stale rebuild cannot make them whole"
