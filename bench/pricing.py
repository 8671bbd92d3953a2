"""What pricing costs the aggregator: CPU per span with pricing on and off, in one run.

Run by hand: ``.venv/bin/python bench/pricing.py [--traces 3000] [--rounds 3]``. Starts
PostgreSQL and Redis (scripts/services.py) and drains the same realistic agent traffic (the
demo's: gpt-4o, gpt-4o-mini and claude-3-5-sonnet priced, a self-hosted llama unpriced) through
the aggregator in this process, from an in-process bus into the real stores, alternating rounds
with pricing on and with a pricer that prices nothing. Also times the pricing step alone on the
decoded spans, with its caches cold and warm. The issue's budget: pricing adds at most 10 % to
the aggregator's CPU per span.
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
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402

from tests.support import publish_to_bus, sdk_spans  # noqa: E402
from trace_insights import runtime  # noqa: E402
from trace_insights.aggregator.decode import deliveries  # noqa: E402
from trace_insights.aggregator.loop import Aggregator  # noqa: E402
from trace_insights.bus import LocalBus, Record  # noqa: E402
from trace_insights.collector.regroup import assemble, regroup  # noqa: E402
from trace_insights.core.prices import Prices  # noqa: E402
from trace_insights.core.settings import Settings  # noqa: E402
from trace_insights.stores.redis import RedisStore  # noqa: E402
from trace_insights.truth.database import create_engine  # noqa: E402
from trace_insights.wiring import policy  # noqa: E402


class _Unpriced:
    """A pricer that prices nothing: the aggregator as it was before costs."""

    def read(self, connection: object) -> "_Unpriced":
        return self

    def price(self, spans: object) -> None:
        return None


def _drain(
    servers: harness.Servers, bus: LocalBus, traces: int, pricing: bool
) -> tuple[float, int]:
    """CPU seconds of this process to aggregate ``traces`` new traces (the same traffic, new
    trace ids: the truth holds every round's) into a fresh experiment, and their spans. Every
    round appends to one bus, so offsets go on as a topic's do (a new bus would start again at
    0, and each batch would read back the earlier rounds' traces finalized at its offsets)."""
    spans = sdk_spans(traces, seed=3)
    experiment = f"p-{uuid.uuid4().hex[:8]}"
    engine = create_engine(servers.database)
    store = RedisStore(servers.redis)
    aggregator = Aggregator(bus, engine, store, policy(Settings()), idle_timeout_ms=600_000)
    if not pricing:
        aggregator.prices = _Unpriced()  # type: ignore[assignment]
    # a new experiment's first batch is made whole by a rebuild: not what is measured
    first = {spans[0].context.trace_id}
    publish_to_bus(bus, [s for s in spans if s.context.trace_id in first], experiment)
    while aggregator.run_once(poll_timeout_ms=10) or bus._pending():
        pass
    rest = [s for s in spans if s.context.trace_id not in first]
    publish_to_bus(bus, rest, experiment)
    started = time.process_time()
    while aggregator.run_once(poll_timeout_ms=10) or bus._pending():
        pass
    cpu = time.process_time() - started
    store.close()
    engine.dispose()
    return cpu, len(rest)


def _pricing_alone(spans: list) -> tuple[float, float, int]:
    """µs per span of ``Prices.price`` over the decoded spans: first pass (cold caches), then
    warm; and how many of the spans are priced calls."""
    records = []
    grouped = regroup(
        encode_spans(spans), partitions=1, max_message_bytes=900_000, experiment_id="b"
    )
    for partition, runs in grouped.routed.items():
        for offset, batch in enumerate(assemble(partition, runs, 900_000)):
            records.append(Record(offset, 0, batch.payload))
    decoded = [d.span for d in deliveries(records).spans]
    prices = Prices()
    started = time.perf_counter()
    prices.price(decoded)
    cold = (time.perf_counter() - started) / len(decoded) * 1e6
    started = time.perf_counter()
    prices.price(decoded)
    warm = (time.perf_counter() - started) / len(decoded) * 1e6
    return cold, warm, sum(span.cost is not None for span in decoded)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spans = sdk_spans(args.traces, seed=3)
    cold, warm, priced = _pricing_alone(spans)
    results: dict[bool, list[float]] = {True: [], False: []}
    bus = LocalBus(partitions=4)
    with harness.started() as servers:
        _drain(servers, bus, args.traces, True)  # warm-up: imports, connections, price table
        runtime.settle()  # as the aggregator process does once it has started
        for _ in range(args.rounds):
            for pricing in (False, True):
                cpu, count = _drain(servers, bus, args.traces, pricing)
                results[pricing].append(cpu / count * 1e6)
    per_span = {k: float(np.median(v)) for k, v in results.items()}
    growth = 100 * (per_span[True] / per_span[False] - 1)
    print(f"{len(spans)} spans ({priced} priced calls), median of {args.rounds} rounds each")
    print(f"{'':44}{'CPU µs/span':>12}")
    print(f"{'aggregator, pricing off (baseline)':44}{per_span[False]:>12.1f}")
    print(f"{'aggregator, pricing on':44}{per_span[True]:>12.1f}")
    print(f"{'growth':44}{growth:>11.1f}%")
    print(f"{'pricing step alone, cold caches':44}{cold:>12.2f}")
    print(f"{'pricing step alone, warm':44}{warm:>12.2f}")


if __name__ == "__main__":
    main()
