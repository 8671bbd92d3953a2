"""What a span cost: the sender's own figure, else a price override, else genai-prices' table.

genai-prices (pydantic's maintained price table, bundled, never fetched at run time) decides
every price. Its ``calc_price`` is too slow to call per span, so each price it holds is turned
once into rates — a constant per request and one per token of each usage type — by asking
the library itself (a price is affine in the usage); a tiered price first takes the tier the
span's input selects. ``tests/unit/test_prices.py`` checks every model of the table against
``calc_price``.

Usage follows the GenAI conventions: input tokens include cache reads and writes, output tokens
include reasoning. A span whose cache tokens exceed its input (Anthropic's API reports input
without them) is read the other way: its cache tokens are added to its input; reasoning past
the output likewise.
"""

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Literal

from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from trace_insights.core import money
from trace_insights.core.records import SpanRecord

USAGE = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)
# the price keys an override may set (genai-prices' names: USD per million tokens, per
# thousand requests)
PriceKey = Literal[
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
]
REPORTED = "reported"
_CACHE_LIMIT = 10_000  # distinct (provider, model) names remembered


@dataclass(frozen=True)
class Override:
    """A price for models whose name matches ``model_pattern`` (a case-insensitive glob), from
    ``provider`` only if set, for spans starting at or after ``valid_from_ms``. A usage type
    it leaves out is free."""

    id: int
    model_pattern: str
    provider: str | None
    prices: Mapping[str, Decimal]
    valid_from_ms: int

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        return fnmatch.fnmatchcase(model.lower(), self.model_pattern.lower())

    def rank(self) -> tuple[int, bool, int, int]:
        """Later valid-from first; at the same time, an exact name before a pattern, a longer
        pattern before a shorter, a newer override before an older."""
        wildcard = any(c in self.model_pattern for c in "*?[")
        return (-self.valid_from_ms, wildcard, -len(self.model_pattern), -self.id)


@dataclass(frozen=True)
class _Rates:
    """A price as an affine function of the usage: USD per request, and per token of each
    ``USAGE`` type."""

    constant: Decimal
    per_token: tuple[Decimal, ...]

    def cost(self, usage: tuple[int, ...]) -> Decimal:
        with localcontext(prec=60):  # exact: every product and sum fits
            total = self.constant
            for rate, count in zip(self.per_token, usage, strict=True):
                if count:
                    total += rate * count
            return total


def _library_cost(price: ModelPrice, **usage: int) -> Decimal:
    return price.calc_price(Usage(**usage))["total_price"]


def rates_of(price: ModelPrice) -> _Rates:
    """The rates of a price without tiers, each read off the library's own arithmetic."""
    constant = _library_cost(price)
    into = _library_cost(price, input_tokens=1) - constant
    out = _library_cost(price, output_tokens=1) - constant
    cache_read = _library_cost(price, input_tokens=1, cache_read_tokens=1) - constant - into
    cache_write = _library_cost(price, input_tokens=1, cache_write_tokens=1) - constant - into
    reasoning = _library_cost(price, output_tokens=1, output_reasoning_tokens=1) - constant - out
    return _Rates(constant, (into, out, cache_read, cache_write, reasoning))


def call(
    model: str,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    usage: dict[str, int],
    start_ns: int,
    trace_id: str = "",
    span_id: str = "",
) -> SpanRecord:
    """A model call as pricing reads it (a stored span priced again, a quote)."""
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=None,
        experiment_id="",
        name="",
        span_type="LLM",
        status="OK",
        status_message="",
        start_time_ns=start_ns,
        end_time_ns=start_ns,
        tool_name=None,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        attributes={},
        usage=usage,
        provider=provider,
    )


def usage_of(span: SpanRecord) -> tuple[int, ...]:
    """The span's usage, ``USAGE`` order, read as the module docstring says."""
    details = span.usage
    cache_read = details.get("cache_read_tokens", 0)
    cache_write = details.get("cache_write_tokens", 0)
    reasoning = details.get("output_reasoning_tokens", 0)
    into = span.input_tokens or 0
    out = span.output_tokens or 0
    if cache_read + cache_write > into:
        into += cache_read + cache_write
    if reasoning > out:
        out += reasoning
    return (into, out, cache_read, cache_write, reasoning)


class Prices:
    """Prices spans (``price``); one per process, its overrides replaced as they change."""

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        self._snapshot = data_snapshot.get_snapshot()
        self._models: dict[tuple[str | None, str], tuple[Provider, ModelInfo] | None] = {}
        self.replace(overrides)

    def replace(self, overrides: Iterable[Override]) -> None:
        self._overrides = sorted(overrides, key=Override.rank)
        self._override_prices = {o.id: ModelPrice(**dict(o.prices)) for o in self._overrides}
        self._matching: dict[tuple[str | None, str], list[Override]] = {}
        # the rates of prices without tiers, by id(price), and of tiered ones by selection
        self._plain: dict[int, tuple[ModelPrice, _Rates]] = {}
        self._tiered: dict[tuple[int, tuple[int, ...]], tuple[ModelPrice, _Rates]] = {}

    def price(self, spans: Iterable[SpanRecord]) -> None:
        """Set each span's ``cost`` (pico-USD, or None) and ``priced_by``."""
        for span in spans:
            if span.reported_cost is not None:
                span.cost, span.priced_by = span.reported_cost, REPORTED
            elif span.needs_price:
                span.cost, span.priced_by = self._cost(span)
            else:
                span.cost, span.priced_by = None, None

    def _cost(self, span: SpanRecord) -> tuple[int | None, str | None]:
        model = span.model
        assert model is not None
        usage = usage_of(span)
        start_ms = span.start_time_ns // 1_000_000
        for override in self._matches(span.provider, model):
            if override.valid_from_ms <= start_ms:
                price = self._override_prices[override.id]
                return money.pico(self._rates_of(price, usage[0]).cost(usage)), (
                    f"override {override.id}"
                )
        found = self._model(span.provider, model)
        if found is None:
            return None, None
        provider, info = found
        if isinstance(info.prices, ModelPrice):
            price = info.prices
        else:
            price = info.get_prices(datetime.fromtimestamp(start_ms / 1000, UTC))
        cost = money.pico(self._rates_of(price, usage[0]).cost(usage))
        return cost, f"genai-prices {provider.id}/{info.id}"

    def _matches(self, provider: str | None, model: str) -> list[Override]:
        key = (provider, model)
        found = self._matching.get(key)
        if found is None:
            if len(self._matching) >= _CACHE_LIMIT:
                self._matching.clear()
            found = self._matching[key] = [o for o in self._overrides if o.matches(provider, model)]
        return found

    def _model(self, provider: str | None, model: str) -> tuple[Provider, ModelInfo] | None:
        key = (provider, model)
        if key in self._models:
            return self._models[key]
        if len(self._models) >= _CACHE_LIMIT:
            self._models.clear()
        found = None
        for provider_id in dict.fromkeys((provider, None)):  # a provider the table lacks: any
            try:
                found = self._snapshot.find_provider_model(model, None, provider_id, None)
                break
            except LookupError:
                continue
        self._models[key] = found
        return found

    def _rates_of(self, price: ModelPrice, input_tokens: int) -> _Rates:
        """The price's rates, at the tiers ``input_tokens`` selects (kept per selection)."""
        plain = self._plain.get(id(price))
        if plain is not None and plain[0] is price:
            return plain[1]
        selection = _tiers(price, input_tokens)
        if not selection:
            self._plain[id(price)] = (price, rates_of(price))
            return self._plain[id(price)][1]
        key = (id(price), selection)
        kept = self._tiered.get(key)
        if kept is None or kept[0] is not price:
            kept = self._tiered[key] = (price, rates_of(_resolve(price, selection)))
        return kept[1]


def _tiers(price: ModelPrice, input_tokens: int) -> tuple[int, ...]:
    """For each tiered value of the price, the tier ``input_tokens`` selects (0: the base, k:
    the k-th tier): the highest whose start the input passes, as genai-prices selects it."""
    selection = []
    for value in price.__dict__.values():
        if isinstance(value, TieredPrices):
            chosen = 0
            for index in range(len(value.tiers), 0, -1):
                if input_tokens > value.tiers[index - 1].start:
                    chosen = index
                    break
            selection.append(chosen)
    return tuple(selection)


def _resolve(price: ModelPrice, selection: tuple[int, ...]) -> ModelPrice:
    """The price with its tiered values at ``selection``."""
    chosen = iter(selection)
    values: dict[str, Decimal] = {}
    for key, value in price.__dict__.items():
        if isinstance(value, TieredPrices):
            index = next(chosen)
            values[key] = value.base if index == 0 else value.tiers[index - 1].price
        elif value is not None and not key.startswith("_"):
            values[key] = value
    return ModelPrice(**values)
