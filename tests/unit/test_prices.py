"""Costs as genai-prices computes them, for every model of its table; overrides; money."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot

from trace_insights.core import money
from trace_insights.core.prices import Override, Prices
from trace_insights.core.records import SpanRecord, summarize

WHEN = datetime(2026, 6, 1, 12, tzinfo=UTC)
WHEN_NS = int(WHEN.timestamp()) * 1_000_000_000


def _span(model, provider=None, into=1000, out=200, usage=None, start_ns=WHEN_NS, **kwargs):
    return SpanRecord(
        trace_id="a" * 32,
        span_id=kwargs.pop("span_id", "b" * 16),
        parent_span_id=kwargs.pop("parent", None),
        experiment_id="1",
        name="chat",
        span_type="CHAT_MODEL",
        status="OK",
        status_message="",
        start_time_ns=start_ns,
        end_time_ns=start_ns + 10**9,
        tool_name=None,
        model=model,
        input_tokens=into,
        output_tokens=out,
        attributes={},
        usage=usage or {},
        provider=provider,
        **kwargs,
    )


def _priced(*spans, prices=None):
    (prices or Prices()).price(spans)
    return spans[0] if len(spans) == 1 else spans


def test_the_issue_figure():
    span = _priced(_span("gpt-4o", "openai"))
    assert money.usd(span.cost) == Decimal("0.0045")
    assert span.priced_by == "genai-prices openai/gpt-4o"


def test_every_model_of_the_table_costs_what_calc_price_says():
    """Each model's price, at random usages with cache and reasoning tokens, inputs around
    the tiers; the rates read off the library agree with its own arithmetic to the pico."""
    rng = random.Random(19)
    prices = Prices()
    checked = 0
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for _ in range(3):
                into = rng.choice([0, 1, 999, 128_001, 200_001, 272_001, 1_000_000])
                read, write = rng.randint(0, into // 2), rng.randint(0, into // 4)
                out = rng.randint(0, 50_000)
                reasoning = rng.randint(0, out)
                usage = {
                    "cache_read_tokens": read,
                    "cache_write_tokens": write,
                    "output_reasoning_tokens": reasoning,
                }
                price = model.get_prices(WHEN)
                want = price.calc_price(Usage(input_tokens=into, output_tokens=out, **usage))
                rates = prices._rates_of(price, into)
                got = rates.cost((into, out, read, write, reasoning))
                assert money.pico(got) == money.pico(want["total_price"]), (provider.id, model.id)
                checked += 1
    assert checked > 3000


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-pro", "gcp.gemini"),  # tiered: over 200k input another price
        ("mistral-large-latest", "mistral_ai"),
        ("gpt-4o", "azure.ai.openai"),
        ("gpt-4o", None),
        ("gpt-4o", "x-unknown-provider"),  # a provider the table lacks: found by model
    ],
)
@pytest.mark.parametrize("into", [1000, 250_000])
def test_spans_cost_what_calc_price_says(model, provider, into):
    usage = {"cache_read_tokens": 300, "output_reasoning_tokens": 50}
    span = _priced(_span(model, provider, into=into, out=400, usage=usage))
    try:
        want = calc_price(
            Usage(input_tokens=into, output_tokens=400, **usage),
            model_ref=model,
            provider_id=provider,
            genai_request_timestamp=WHEN,
        )
    except LookupError:
        want = calc_price(
            Usage(input_tokens=into, output_tokens=400, **usage),
            model_ref=model,
            genai_request_timestamp=WHEN,
        )
    assert span.cost == money.pico(want.total_price)


def test_cache_tokens_beside_the_input_are_added_to_it():
    """Anthropic's API reports input without its cache tokens: read as 1000 + 500."""
    beside = _priced(
        _span("claude-sonnet-4-5", "anthropic", into=100, usage={"cache_read_tokens": 500})
    )
    within = _priced(
        _span("claude-sonnet-4-5", "anthropic", into=600, usage={"cache_read_tokens": 500})
    )
    assert beside.cost == within.cost


def test_unpriced_reported_and_free():
    unknown, reported, silent = _priced(
        _span("my-llama-ft"),
        _span("my-llama-ft", reported_cost=5 * money.PER_USD, span_id="c" * 16),
        _span("gpt-4o", into=0, out=0, span_id="d" * 16),
    )
    assert (unknown.cost, unknown.priced_by, unknown.unpriced) == (None, None, True)
    assert (reported.cost, reported.priced_by) == (5 * money.PER_USD, "reported")
    assert (silent.cost, silent.unpriced) == (None, False)  # no tokens: nothing to price
    summary = summarize("a" * 32, "1", [unknown, reported, silent])
    assert (summary.cost, summary.unpriced_calls) == (5 * money.PER_USD, 1)


def _override(id_, pattern, valid_from_ms=0, provider=None, **prices):
    values = {key: Decimal(value) for key, value in prices.items()}
    return Override(id_, pattern, provider, values, valid_from_ms)


def test_an_override_beats_the_table_from_its_valid_from():
    from_ms = WHEN_NS // 1_000_000
    prices = Prices(
        [
            _override(1, "gpt-4o*", input_mtok="1", output_mtok="2"),
            _override(2, "gpt-4o", from_ms, input_mtok="0", output_mtok="10"),
            _override(3, "ft:*", provider="openai", input_mtok="3"),
        ]
    )
    before, after, other, fine_tuned, elsewhere = _priced(
        _span("gpt-4o", start_ns=WHEN_NS - 1_000_000),
        _span("gpt-4o", span_id="c" * 16),
        _span("gpt-4o-mini", span_id="d" * 16),
        _span("ft:gpt-4o:acme", "openai", span_id="e" * 16),
        _span("ft:gpt-4o:acme", "azure", span_id="f" * 16),
        prices=prices,
    )
    assert (money.usd(before.cost), before.priced_by) == (Decimal("0.0014"), "override 1")
    assert (money.usd(after.cost), after.priced_by) == (Decimal("0.002"), "override 2")
    assert (money.usd(other.cost), other.priced_by) == (Decimal("0.0014"), "override 1")
    assert money.usd(fine_tuned.cost) == Decimal("0.003")
    assert elsewhere.cost is None  # the override is for openai's calls only
    prices.replace([])
    assert _priced(_span("gpt-4o"), prices=prices).priced_by == "genai-prices openai/gpt-4o"


def test_money_is_exact_and_bounded():
    assert money.pico(Decimal("0.0000000000005")) == 0  # half to even
    assert money.pico(Decimal("0.0000000000015")) == 2
    assert money.pico(Decimal(2**62) / money.PER_USD) == 2**62
    assert money.pico(Decimal(2**62 + 1) / money.PER_USD) is None
    assert money.text(1_234_500_000_000) == "1.2345" and money.text(10 * money.PER_USD) == "10"
    assert money.shown(0, 3) is None and money.shown(0, 0) == "0"
    from collections import Counter

    counts: Counter[str] = Counter()
    for _ in range(4):
        money.add(counts, "c", 2**62)
    money.add(counts, "c", 7)
    assert all(abs(v) < 2**63 for v in counts.values())
    assert money.read(counts, "c") == 4 * 2**62 + 7
    money.add(counts, "c", 2**62, sign=-1)
    assert money.read(counts, "c") == 3 * 2**62 + 7
    assert money.by_name(counts) == {"c": 3 * 2**62 + 7}
    huge = [_span("x", reported_cost=2**62, span_id=f"{i:016x}") for i in range(3)]
    assert summarize("a" * 32, "1", list(_priced(*huge))).cost is None  # past a bigint
