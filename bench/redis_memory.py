"""Redis bytes per experiment-hour, at several cardinalities of tool names and tag values.

Run by hand: ``.venv/bin/python bench/redis_memory.py [--traces 20000] [--cardinalities
10,100,1000]``. Starts Redis (scripts/services.py) and, for each cardinality C, aggregates one
hour of agent traffic into a new experiment through the aggregator's own delta code and fenced
apply (``build_updates``, as the live path does), over 4 partitions. Each trace makes 1-3
calls of 4 models and 0-3 calls of distinct tools of C names (``synthetic.py``), and carries a
``user`` tag of C values. Then every key of the experiment is measured with ``MEMORY USAGE``
and summed by the bucket it belongs to: the hour, its 60 minutes, its day, and the keys outside
time (fences, registries). The baseline in the same run is the same traffic at cardinality 1.
"""

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "bench")]

import redis  # noqa: E402
import services  # noqa: E402
from synthetic import POLICY, synthetic  # noqa: E402

from tests.support import make_whole  # noqa: E402
from trace_insights.aggregator.deltas import build_updates  # noqa: E402
from trace_insights.aggregator.truth.history import History  # noqa: E402
from trace_insights.aggregator.truth.writer import Owed  # noqa: E402
from trace_insights.core import keys  # noqa: E402
from trace_insights.core.records import SpanRecord, TraceSummary  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402

HOUR = 3_600_000
PARTITIONS = 4


def aggregate(store: RedisStore, experiment: str, traces: int, cardinality: int) -> None:
    rnd = random.Random(cardinality)
    hour_end_ms = int(time.time() * 1000) // HOUR * HOUR  # the last whole hour
    tools = [f"tool_{n}" for n in range(cardinality)]
    make_whole(store, experiment)
    made: list[tuple[TraceSummary, list[SpanRecord]]] = [
        synthetic(n, experiment, rnd, hour_end_ms - 1, HOUR, tools, cardinality)
        for n in range(traces)
    ]
    batch = 500
    for index, start in enumerate(range(0, traces, batch)):
        partition, offset = index % PARTITIONS, index // PARTITIONS
        histories = [History(s, offset, spans) for s, spans in made[start : start + batch]]
        owed = Owed(after=offset - 1, end=offset, histories=histories)
        for update in build_updates(owed, partition, store, POLICY):
            assert store.apply(update)


def measure(client: redis.Redis, experiment: str) -> dict[str, int]:
    """Bytes of the experiment's keys by resolution (m, h, d) and outside time."""
    out: dict[str, int] = defaultdict(int)
    for key in client.scan_iter(match=keys.experiment_pattern(experiment), count=1000):
        name = key.decode()
        where = keys.bucket_of(name)
        out[where[0] if where else "-"] += int(client.memory_usage(key, samples=0) or 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000, help="traces in the hour")
    parser.add_argument("--cardinalities", default="10,100,1000")
    args = parser.parse_args()
    cardinalities = [1, *(int(c) for c in args.cardinalities.split(","))]
    server = services.Redis(Path(tempfile.mkdtemp(prefix="trace-insights-bench-redis-")))
    server.start()
    try:
        store = RedisStore(server.url)
        client = redis.Redis.from_url(server.url)
        rows = []
        for cardinality in cardinalities:
            experiment = f"mem-{cardinality}"
            aggregate(store, experiment, args.traces, cardinality)
            rows.append((cardinality, measure(client, experiment)))
        client.close()
        store.close()
    finally:
        server.stop()
    print(f"\n{args.traces:,} traces in one hour, {PARTITIONS} partitions; KB per experiment-hour")
    print(
        f"| {'tools, tag values':>17} | {'hour bucket':>11} | {'60 minutes':>10} | "
        f"{'day bucket':>10} | {'outside time':>12} | {'all':>8} |"
    )
    print(f"|{'-' * 18}:|{'-' * 12}:|{'-' * 11}:|{'-' * 11}:|{'-' * 13}:|{'-' * 9}:|")
    for cardinality, sizes in rows:
        total = sum(sizes.values())
        name = f"{cardinality} (baseline)" if cardinality == 1 else str(cardinality)
        print(
            f"| {name:>17} | {sizes['h'] / 1024:>11,.0f} | {sizes['m'] / 1024:>10,.0f} | "
            f"{sizes['d'] / 1024:>10,.0f} | {sizes['-'] / 1024:>12,.0f} | {total / 1024:>8,.0f} |"
        )


if __name__ == "__main__":
    main()
