"""Cost, against a ground truth computed here with genai-prices on the usages sent: models of
several providers with cache tokens, tiered prices, overrides with a valid-from, a
sender-reported cost and an unpriced model; spans in two phases (late children revise a
finalized trace), through a flaky store, replays and a rebuild — stream equals store equals
rebuild, and cost by user is the sum over this test's own traces."""

import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from genai_prices import Usage, calc_price
from opentelemetry import trace as api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.contract.test_pipeline_contract import POLICY, FlakyStore, _drain
from tests.support import publish_to_bus
from trace_insights.aggregator.loop import Aggregator
from trace_insights.aggregator.rebuild import rebuild
from trace_insights.aggregator.reprice import reprice
from trace_insights.bus import LocalBus
from trace_insights.core import keys, money
from trace_insights.core.buckets import Resolution
from trace_insights.core.keys import fields
from trace_insights.truth.models import PriceOverride, Trace

DAY = Resolution.DAY
BASE = datetime(2026, 6, 1, tzinfo=UTC)
BASE_NS = int(BASE.timestamp()) * 10**9
MINUTE_NS = 60 * 10**9
SWITCH_NS = BASE_NS + 20 * MINUTE_NS  # acme's second price applies from here
# (model, provider, input, output, cache read, cache write, reported USD)
CALLS = [
    ("gpt-4o", "openai", 1000, 200, 500, 0, None),
    ("claude-sonnet-4-5", "anthropic", 3000, 400, 1000, 800, None),
    ("gemini-2.5-pro", "gcp.gemini", 250_000, 900, 0, 0, None),  # past its 200k tier
    ("gemini-2.5-pro", "gcp.gemini", 1200, 100, 0, 0, None),
    ("acme-llm-7b", None, 2000, 500, 0, 0, None),  # priced by an override
    ("mystery-model", "acme", 700, 70, 0, 0, None),  # no price anywhere
    ("gpt-4o", "openai", 100, 10, 0, 0, "0.0421"),  # the sender's figure beats the table
]
USERS = ("ann", "bob", "cy")


def _traces(count: int, base_ns: int = BASE_NS):
    """Real SDK spans: each trace a root (its user) and two model calls, a minute apart."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("cost")
    calls = []
    for i in range(count):
        start = base_ns + i * MINUTE_NS
        root = tracer.start_span("agent", start_time=start, attributes={"user.id": USERS[i % 3]})
        context = root.get_span_context()
        for j in range(2):
            model, prov, into, out, read, write, reported = CALLS[(i + 3 * j) % len(CALLS)]
            attributes = {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": into,
                "gen_ai.usage.output_tokens": out,
            }
            if prov:
                attributes["gen_ai.provider.name"] = prov
            if read:
                attributes["gen_ai.usage.cache_read.input_tokens"] = read
            if write:
                attributes["gen_ai.usage.cache_creation.input_tokens"] = write
            if reported:
                attributes["gen_ai.usage.cost"] = float(reported)
            parent = api.set_span_in_context(root)
            child = tracer.start_span(
                f"call{j}", context=parent, start_time=start + 1000, attributes=attributes
            )
            child.end(end_time=start + 2000)
            calls.append(
                (
                    f"{context.trace_id:032x}",
                    USERS[i % 3],
                    start + 1000,
                    CALLS[(i + 3 * j) % len(CALLS)],
                )
            )
        root.end(end_time=start + 3000)
    return list(memory.get_finished_spans()), calls


def _expected_cost(start_ns: int, call) -> int | None:
    model, prov, into, out, read, write, reported = call
    if reported is not None:
        return money.pico(Decimal(reported))
    if model == "mystery-model":
        return None
    if model == "acme-llm-7b":  # the overrides: $1/$2 per million, then $4/$8
        rate_in, rate_out = (1, 2) if start_ns < SWITCH_NS else (4, 8)
        return money.pico(Decimal(rate_in * into + rate_out * out) / 10**6)
    usage = Usage(
        input_tokens=into, output_tokens=out, cache_read_tokens=read, cache_write_tokens=write
    )
    when = datetime.fromtimestamp(start_ns / 1e9, UTC)
    found = calc_price(usage, model_ref=model, provider_id=prov, genai_request_timestamp=when)
    return money.pico(found.total_price)


def _aggregates(store, experiment):
    """The day's counters (float sums of latencies left out: their order of addition differs
    between a stream with late spans and a rebuild) and its cost per user."""
    bucket = store.read_hash(keys.bucket(experiment, DAY, BASE_NS // 10**6))
    users = store.read_hash(keys.tag_cost(experiment, DAY, BASE_NS // 10**6, "user"))
    counters = {name: n for name, n in bucket.items() if not name.endswith("latency_sum")}
    return counters, users


def test_costs_equal_genai_prices_through_failures_replays_and_a_rebuild(truth_engine, store):
    experiment = f"c{uuid.uuid4().hex[:8]}"
    spans, calls = _traces(42)
    with truth_engine.begin() as connection:
        for pattern, valid_from_ns, rates in (
            ("acme-llm-*", 0, {"input_mtok": "1", "output_mtok": "2"}),
            ("ACME-LLM-7B", SWITCH_NS, {"input_mtok": "4", "output_mtok": "8"}),
        ):
            connection.execute(
                sa.insert(PriceOverride).values(
                    model_pattern=pattern,
                    provider=None,
                    prices=rates,
                    valid_from_ms=valid_from_ns // 10**6,
                    created_ms=0,
                )
            )
    bus = LocalBus(partitions=3)
    roots = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    early = {s.context.trace_id for s in roots[::2]}  # half the traces: children come late
    publish_to_bus(
        bus, roots + [c for c in children if c.context.trace_id not in early], experiment
    )
    aggregator = Aggregator(bus, truth_engine, FlakyStore(store, every=3), POLICY, 600_000)
    _drain(aggregator)
    publish_to_bus(bus, [c for c in children if c.context.trace_id in early], experiment)
    publish_to_bus(bus, spans[:30], experiment)  # duplicates
    _drain(aggregator)
    bus.restart()
    _drain(aggregator)

    total = 0
    by_model: Counter[str] = Counter()
    by_provider: Counter[str] = Counter()
    by_user: Counter[str] = Counter()
    by_trace: Counter[str] = Counter()
    unpriced: Counter[str] = Counter()
    for trace_id, user, start_ns, call in calls:
        cost = _expected_cost(start_ns, call)
        if cost is None:
            unpriced[call[0]] += 1
            continue
        total += cost
        by_model[call[0]] += cost
        by_provider[call[1] or ""] += cost
        by_user[user] += cost
        by_trace[trace_id] += cost
    assert unpriced["mystery-model"] > 0 and by_model["acme-llm-7b"] > 0

    bucket, users = _aggregates(store, experiment)
    assert money.read(bucket, fields.COST) == total
    for model, cost in by_model.items():
        assert money.read(bucket, fields.model(model, "cost")) == cost, model
    for provider, cost in by_provider.items():
        assert money.read(bucket, fields.provider(provider, "cost")) == cost, provider
    assert bucket[fields.UNPRICED_CALLS] == sum(unpriced.values())
    assert bucket[fields.model("mystery-model", "unpriced_calls")] == unpriced["mystery-model"]
    assert fields.model("mystery-model", "cost") not in bucket
    for user, cost in by_user.items():
        assert money.read(users, user) == cost, user
    with truth_engine.connect() as connection:
        stored = dict(
            connection.execute(
                sa.select(Trace.trace_id, Trace.cost).where(Trace.experiment_id == experiment)
            ).all()
        )
    assert {t: c for t, c in stored.items() if c} == dict(by_trace)

    live = _aggregates(store, experiment)
    assert rebuild(truth_engine, store, POLICY, experiment_ids=[experiment]) == 42
    assert _aggregates(store, experiment) == live


def test_a_changed_override_applies_to_a_past_range_with_reprice(truth_engine, store):
    """Stored costs keep the prices of their time until ``rebuild --reprice`` over a range:
    then the range's calls are priced anew (the sender's own figures kept) and its aggregates
    follow; calls outside the range keep theirs."""
    experiment = f"r{uuid.uuid4().hex[:8]}"
    spans, calls = _traces(21)
    bus = LocalBus(partitions=2)
    publish_to_bus(bus, spans, experiment)
    aggregator = Aggregator(bus, truth_engine, store, POLICY, 600_000)
    _drain(aggregator)
    bucket, _ = _aggregates(store, experiment)
    acme = [c for c in calls if c[3][0] == "acme-llm-7b"]
    assert acme and fields.model("acme-llm-7b", "cost") not in bucket  # no price yet
    with truth_engine.begin() as connection:
        connection.execute(
            sa.insert(PriceOverride).values(
                model_pattern="acme-*",
                provider=None,
                prices={"input_mtok": "1", "output_mtok": "2"},
                valid_from_ms=0,
                created_ms=0,
            )
        )
    day = BASE_NS // 10**6
    next_day = day + 86_400_000
    assert reprice(truth_engine, next_day, next_day + 1, [experiment]) == 0  # not its range
    assert reprice(truth_engine, day, day + 1, [experiment]) == len(acme)
    assert reprice(truth_engine, day, day + 1, [experiment]) == 0  # priced: nothing moves
    rebuild(truth_engine, store, POLICY, day, day + 1, [experiment])
    bucket, users = _aggregates(store, experiment)
    by_user: Counter[str] = Counter()
    for _, user, start, call in calls:
        by_user[user] += _reprice_truth(start, call) or 0
    spent = {name: n for name, n in users.items() if not name.endswith(keys.UNPRICED)}
    assert money.by_name(spent) == dict(by_user)
    expected = sum(money.pico(Decimal(c[3][2] * 1 + c[3][3] * 2) / 10**6) for c in acme)
    assert money.read(bucket, fields.model("acme-llm-7b", "cost")) == expected
    total = sum(c for _, _, start, call in calls if (c := _reprice_truth(start, call)) is not None)
    assert money.read(bucket, fields.COST) == total
    with truth_engine.connect() as connection:
        costs = connection.execute(
            sa.select(sa.func.sum(Trace.cost), sa.func.sum(Trace.unpriced_calls)).where(
                Trace.experiment_id == experiment
            )
        ).one()
    assert (int(costs[0]), int(costs[1])) == (total, bucket[fields.UNPRICED_CALLS])


def _reprice_truth(start_ns, call):
    """The ground truth once acme's $1/$2 override applies to every one of its calls."""
    if call[0] == "acme-llm-7b":
        return money.pico(Decimal(call[2] * 1 + call[3] * 2) / 10**6)
    return _expected_cost(start_ns, call)
