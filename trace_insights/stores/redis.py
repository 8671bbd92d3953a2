"""The Redis aggregate store: one Lua script applies an experiment's update and its fence
atomically, in the experiment's hash slot (so it also holds on Redis Cluster). The same script
checks that the aggregates are whole (or that a rebuild holds the claim), so a Redis that
restarted empty never takes a live update until it was rebuilt."""

import json
from typing import Any

import redis

from trace_insights.core import keys
from trace_insights.core.keys import fields
from trace_insights.stores.base import (
    CHANGES_KEPT,
    CLAIM_TTL_MS,
    FIRST_CHANGE,
    Change,
    Incomplete,
    Update,
)

# KEYS: the fence hash, the meta hash, the rebuild claim, then the update's keys; ARGV:
# partition, expected fence, new fence, ops (JSON), rebuild token ('' if live), claim ttl,
# blobs... Returns 1 applied, 0 fence moved, 2 not whole, 3 claim lost. The experiment
# registry (outside the slot) is added to after the script: idempotent.
_APPLY = """
if ARGV[5] == '' then
  if redis.call('HEXISTS', KEYS[2], 'generation') == 0 then return 2 end
elseif redis.call('GET', KEYS[3]) ~= ARGV[5] then
  return 3
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current or '-1') ~= ARGV[2] then return 0 end
if ARGV[5] ~= '' then redis.call('PEXPIRE', KEYS[3], ARGV[6]) end
local ops = cjson.decode(ARGV[4])
for _, op in ipairs(ops.c) do
  local key = KEYS[op[1]]
  for i = 2, #op, 2 do
    if redis.call('HINCRBY', key, op[i], op[i + 1]) == 0 then redis.call('HDEL', key, op[i]) end
  end
end
for _, op in ipairs(ops.s) do redis.call('HINCRBYFLOAT', KEYS[op[1]], op[2], op[3]) end
for _, op in ipairs(ops.hi) do
  local v = redis.call('HGET', KEYS[op[1]], op[2])
  if (not v) or tonumber(v) < tonumber(op[3]) then redis.call('HSET', KEYS[op[1]], op[2], op[3]) end
end
for _, op in ipairs(ops.b) do redis.call('HSET', KEYS[op[1]], op[2], ARGV[op[3]]) end
for _, op in ipairs(ops.d) do redis.call('PFADD', KEYS[op[1]], unpack(op, 2)) end
for _, op in ipairs(ops.sa) do redis.call('SADD', KEYS[op[1]], unpack(op, 2)) end
for _, op in ipairs(ops.sr) do redis.call('SREM', KEYS[op[1]], unpack(op, 2)) end
for _, op in ipairs(ops.e) do redis.call('PEXPIREAT', KEYS[op[1]], op[2]) end
for _, op in ipairs(ops.x) do
  redis.call('XADD', KEYS[op[1]], 'MAXLEN', '~', op[2], '*', 'c', op[3])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# KEYS: the rebuild claim, the meta hash; ARGV: token, whether the rebuild made them whole
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('HSET', KEYS[2], 'generation', ARGV[1]) end
return 1
"""
# KEYS: a registry per entry; ARGV[2i - 1] = the cap, ARGV[2i] = the value for KEYS[i]
_ADMIT = """
local out = {}
for i, key in ipairs(KEYS) do
  local cap, value = tonumber(ARGV[2 * i - 1]), ARGV[2 * i]
  if redis.call('SISMEMBER', key, value) == 1 then
    out[i] = 1
  elseif redis.call('SCARD', key) < cap then
    redis.call('SADD', key, value)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""
_UNPACK_LIMIT = 500  # members per SADD/PFADD call (Lua's stack is limited)


class RedisStore:
    def __init__(self, url: str, cluster: bool = False) -> None:
        self._client: Any = (
            redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
        )
        self._apply = self._client.register_script(_APPLY)
        self._admit = self._client.register_script(_ADMIT)
        self._finish = self._client.register_script(_FINISH)
        self._cluster = cluster

    def fences(self, experiment_id: str) -> dict[int, int]:
        raw = self._client.hgetall(keys.fence(experiment_id))
        return {int(partition): int(offset) for partition, offset in raw.items()}

    def claim_rebuild(self, experiment_id: str, token: int) -> bool:
        claim = keys.rebuilding(experiment_id)
        return bool(self._client.set(claim, token, nx=True, px=CLAIM_TTL_MS))

    def finish_rebuild(self, experiment_id: str, token: int) -> bool:
        claim = [keys.rebuilding(experiment_id), keys.meta(experiment_id)]
        return bool(self._finish(keys=claim, args=[token, 1]))

    def release_rebuild(self, experiment_id: str, token: int) -> None:
        self._finish(
            keys=[keys.rebuilding(experiment_id), keys.meta(experiment_id)], args=[token, 0]
        )

    def generations(self, experiment_ids: list[str]) -> list[int | None]:
        pipe = self._client.pipeline(transaction=False)
        for experiment_id in experiment_ids:
            pipe.hget(keys.meta(experiment_id), fields.GENERATION)
        return [None if raw is None else int(raw) for raw in pipe.execute()]

    def apply(self, update: Update) -> bool:
        key_index: dict[str, int] = {}

        def index(key: str) -> int:
            if key not in key_index:
                key_index[key] = len(key_index) + 4  # after the fence, meta and claim
            return key_index[key]

        blobs: list[bytes] = []
        grouped: dict[str, list[Any]] = {}
        for (key, name), delta in update.counters.items():
            if delta:
                group = grouped.get(key)
                if group is None:
                    group = grouped[key] = [index(key)]
                group.append(name)
                group.append(delta)
        ops: dict[str, list[list[Any]]] = {
            "c": list(grouped.values()),  # [key index, field, delta, field, delta, ...]
            "s": [[index(k), f, repr(x)] for (k, f), x in update.sums.items()],
            "hi": [[index(k), f, repr(x)] for (k, f), x in update.maximums.items()],
            "b": [],
            "d": _chunked(index, update.distinct),
            "sa": _chunked(index, {keys.dirty(update.experiment_id): update.dirty}),
            "sr": _chunked(index, {keys.dirty(update.experiment_id): update.clean}),
            "e": [[index(k), at] for k, at in update.expire_at_ms.items()],
            "x": [],
        }
        if update.changed:
            watermark = update.maximums.get((keys.meta(update.experiment_id), fields.WATERMARK), -1)
            change = _change_entry(update.changed, watermark)
            ops["x"].append([index(keys.changes(update.experiment_id)), CHANGES_KEPT, change])
        for (key, name), blob in update.blobs.items():
            blobs.append(blob)
            ops["b"].append([index(key), name, 6 + len(blobs)])
        e = update.experiment_id
        all_keys = [keys.fence(e), keys.meta(e), keys.rebuilding(e), *key_index]
        token = "" if update.token is None else str(update.token)
        args: list[int | str | bytes] = [
            update.partition,
            update.expected_fence,
            update.fence,
            json.dumps(ops),
            token,
            CLAIM_TTL_MS,
            *blobs,
        ]
        outcome = int(self._apply(keys=all_keys, args=args))
        if outcome == 2:
            raise Incomplete(e, "the aggregates are not whole (the store lost them?)")
        if outcome == 3:
            raise Incomplete(e, "the rebuild's claim was lost")
        if outcome == 1:
            self._client.sadd(keys.EXPERIMENTS, e)
        return outcome == 1

    def read_hash(self, key: str) -> dict[str, float]:
        return self.read_hashes([key])[0]

    def read_hashes(self, keys_: list[str]) -> list[dict[str, float]]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys_:
            pipe.hgetall(key)
        return [
            {name.decode(): _number(value) for name, value in raw.items()} for raw in pipe.execute()
        ]

    def read_fields(self, keys_: list[str], names: list[str]) -> list[dict[str, float]]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys_:
            pipe.hmget(key, names)
        return [
            {
                name: _number(value)
                for name, value in zip(names, raw, strict=True)
                if value is not None
            }
            for raw in pipe.execute()
        ]

    def read_blob_hashes(self, keys_: list[str]) -> list[dict[str, bytes]]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys_:
            pipe.hgetall(key)
        return [{name.decode(): value for name, value in raw.items()} for raw in pipe.execute()]

    def read_blob_fields(self, locations: list[tuple[str, str]]) -> list[bytes | None]:
        pipe = self._client.pipeline(transaction=False)
        for key, name in locations:
            pipe.hget(key, name)
        return list(pipe.execute()) if locations else []

    def dirty(self, experiment_id: str) -> set[str]:
        return {member.decode() for member in self._client.smembers(keys.dirty(experiment_id))}

    def admit(self, entries: list[tuple[str, str, int]]) -> list[bool]:
        if not entries:
            return []
        args = [part for _, value, cap in entries for part in (cap, value)]
        decisions = self._admit(keys=[registry for registry, _, _ in entries], args=args)
        return [bool(decision) for decision in decisions]

    def count_distinct(self, keys_: list[str]) -> int:
        """One union per hash slot: on a cluster, keys of several experiments are counted per
        experiment and summed (values shared between experiments count once per experiment)."""
        if not keys_:
            return 0
        if not self._cluster:
            return int(self._client.pfcount(*keys_))
        by_slot: dict[str, list[str]] = {}
        for key in keys_:
            by_slot.setdefault(key[key.index("{") : key.index("}") + 1], []).append(key)
        return sum(int(self._client.pfcount(*group)) for group in by_slot.values())

    def experiments(self) -> set[str]:
        return {member.decode() for member in self._client.smembers(keys.EXPERIMENTS)}

    def last_change(self, experiment_id: str) -> str:
        latest = self._client.xrevrange(keys.changes(experiment_id), count=1)
        return latest[0][0].decode() if latest else FIRST_CHANGE

    def changes(self, after: dict[str, str], limit: int = 1000) -> list[Change]:
        pipe = self._client.pipeline(transaction=False)
        experiments = list(after)
        for experiment_id in experiments:  # from the last entry read, to see it still there
            pipe.xrange(keys.changes(experiment_id), min=after[experiment_id], count=limit + 1)
        out = []
        for experiment_id, entries in zip(experiments, pipe.execute(), strict=True):
            last = after[experiment_id]
            if entries and entries[0][0].decode() == last:
                entries = entries[1:]
            elif last != FIRST_CHANGE:
                out.append(Change(experiment_id, last, [], -1, lost=True))
            for entry_id, entry in entries[:limit]:
                payload = json.loads(entry[b"c"])
                buckets = [(resolution, int(start)) for resolution, start in payload["b"]]
                out.append(Change(experiment_id, entry_id.decode(), buckets, payload["w"]))
        return out

    def report_progress(self, partition: int, lag: int, at_ms: int) -> None:
        self._client.hset(
            keys.PROGRESS, mapping={f"lag:{partition}": lag, f"at:{partition}": at_ms}
        )

    def progress(self) -> dict[int, tuple[int, int]]:
        raw = {k.decode(): int(v) for k, v in self._client.hgetall(keys.PROGRESS).items()}
        return {
            int(name[4:]): (lag, raw.get(f"at:{name[4:]}", 0))
            for name, lag in raw.items()
            if name.startswith("lag:")
        }

    def drop(self, experiment_id: str, start_ms: int | None, end_ms: int | None) -> None:
        batch, dropped = [], set()
        stream, claim = keys.changes(experiment_id), keys.rebuilding(experiment_id)
        self._client.hdel(keys.meta(experiment_id), fields.GENERATION)
        for key in self._client.scan_iter(match=keys.experiment_pattern(experiment_id), count=1000):
            if keys.is_registry(key.decode()) or key.decode() in (stream, claim):
                continue
            if start_ms is not None and end_ms is not None:
                bucket = keys.bucket_of(key.decode())
                if bucket is None or not start_ms <= bucket[1] < end_ms:
                    continue
                dropped.add(bucket)
            batch.append(key)
            if len(batch) >= 500:
                self._client.delete(*batch)
                batch = []
        if batch:
            self._client.delete(*batch)
        if start_ms is None or end_ms is None:
            # emptied, not deleted: a stream keeps its last id, so later ids stay above every
            # cursor a follower holds (a new stream would restart from the clock)
            self._client.xtrim(stream, maxlen=0)
        if dropped:
            watermark = self._client.hget(keys.meta(experiment_id), fields.WATERMARK)
            change = _change_entry(sorted(dropped), float(watermark or -1))
            self._client.xadd(
                keys.changes(experiment_id), {"c": change}, maxlen=CHANGES_KEPT, approximate=True
            )

    def close(self) -> None:
        self._client.close()


def _chunked(index: Any, groups: dict[str, set[str]]) -> list[list[Any]]:
    out = []
    for key, members in groups.items():
        ordered = sorted(members)
        for start in range(0, len(ordered), _UNPACK_LIMIT):
            out.append([index(key), *ordered[start : start + _UNPACK_LIMIT]])
    return out


def _number(raw: bytes) -> float:
    text = raw.decode()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _change_entry(buckets: list[tuple[str, int]], watermark: float) -> str:
    """A change stream entry's payload, as ``changes`` reads it."""
    return json.dumps({"b": buckets, "w": int(watermark)})
