"""The aggregator's own CPU per span, beside the decode-only baseline measured in the same run.

Run by hand: ``.venv/bin/python bench/aggregator_cpu.py [--traces 2000] [--rounds 4]``. Starts
PostgreSQL and Redis (scripts/services.py); each round generates new traces (the demo's agent
traffic, through the real OTel SDK and the collector's regrouping), appends them to one
in-process bus (offsets go on, as a topic's do), and measures this process's CPU:

- baseline: the round's records decoded into canonical spans only (``deliveries``), the floor
  of any consumer in Python;
- aggregator: the same records drained by the aggregator into the real stores (decode,
  normalize, price, PostgreSQL, deltas, Redis).

No broker, no start-up: the issue's target is the aggregator's CPU per span, at most 2.5 times
the baseline. The stores' own CPU is ``bench/aggregator.py``'s. Wrap it in ``py-spy record``
for a profile of the same path.
"""

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import harness  # noqa: E402
import numpy as np  # noqa: E402

from tests.support import publish_to_bus, sdk_spans  # noqa: E402
from trace_insights import runtime  # noqa: E402
from trace_insights.aggregator.decode import deliveries  # noqa: E402
from trace_insights.aggregator.loop import Aggregator  # noqa: E402
from trace_insights.bus import LocalBus  # noqa: E402
from trace_insights.core.settings import Settings  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402
from trace_insights.wiring import policy  # noqa: E402

PARTITIONS = 4


def _round(servers: harness.Servers, bus: LocalBus, traces: int, seed: int) -> tuple[float, ...]:
    """(baseline, aggregator) CPU µs per span of one round of ``traces`` new traces."""
    spans = sdk_spans(traces, seed=seed)
    experiment = f"c-{uuid.uuid4().hex[:8]}"
    engine = create_engine(servers.database)
    store = RedisStore(servers.redis)
    aggregator = Aggregator(bus, engine, store, policy(Settings()), idle_timeout_ms=600_000)
    # a new experiment's first batch is made whole by a rebuild: not what is measured
    first = {spans[0].context.trace_id}
    publish_to_bus(bus, [s for s in spans if s.context.trace_id in first], experiment)
    while aggregator.run_once(poll_timeout_ms=10) or bus._pending():
        pass
    rest = [s for s in spans if s.context.trace_id not in first]
    replica = LocalBus(partitions=PARTITIONS)  # the same records, for the baseline to decode
    publish_to_bus(replica, rest, experiment)
    records = [r for batch in replica.poll(0, max_records=10**9).values() for r in batch]
    started = time.process_time()
    decoded = len(deliveries(records).spans)
    baseline = time.process_time() - started
    publish_to_bus(bus, rest, experiment)
    started = time.process_time()
    while aggregator.run_once(poll_timeout_ms=10) or bus._pending():
        pass
    cpu = time.process_time() - started
    store.close()
    engine.dispose()
    assert decoded == len(rest), (decoded, len(rest))
    return baseline / decoded * 1e6, cpu / decoded * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    bus = LocalBus(partitions=PARTITIONS)
    rounds = []
    with harness.started() as servers:
        _round(servers, bus, 50, seed=1)  # warm-up: imports, connections, price table
        runtime.settle()  # as the aggregator process does once it has started
        for index in range(args.rounds):
            rounds.append(_round(servers, bus, args.traces, seed=10 + index))
    baseline, aggregator = (float(np.median(column)) for column in zip(*rounds, strict=True))
    print(f"{args.traces} traces a round, median of {args.rounds} rounds")
    print(f"{'':48}{'CPU µs/span':>12}{'per 100k spans':>16}")
    for name, value in (
        ("baseline: decode into canonical spans only", baseline),
        ("aggregator: decode → PostgreSQL → deltas → Redis", aggregator),
    ):
        print(f"{name:48}{value:>12.1f}{value / 10:>14.2f} s")
    print(f"{'aggregator / baseline (times)':48}{aggregator / baseline:>12.2f}")


if __name__ == "__main__":
    main()
