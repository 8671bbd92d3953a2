"""Cost as exact integers: pico-USD (10^-12 dollars), in every store and every sum.

A span's cost is rounded once, to the pico-dollar (half to even), when it is priced; every sum
after that is integer arithmetic, so totals never drift and stream, store and rebuild agree to
the digit. A span costs at most ``MAX_SPAN`` (≈ $4.6M) and a trace at most ``MAX_TRACE`` (a
bigint); past them the cost is no cost (the span or trace is unpriced), as with token counts.

Redis counters are int64, so an aggregate of costs is kept in two counters: ``name`` holds the
low ``SPLIT_BITS`` bits of each cost added, ``name + HI`` the rest. Each stays in an int64 up to
2^31 maximal costs per bucket, the bound token counts already have.
"""

from collections import Counter
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

CURRENCY = "USD"
PER_USD = 10**12
MAX_SPAN = 2**62
MAX_TRACE = 2**63 - 1
SPLIT_BITS = 30
HI = "\x00hi"  # NUL never occurs in a stored name (core/storable.py)
_LOW = (1 << SPLIT_BITS) - 1
_PICO = Decimal(1).scaleb(-12)


def pico(usd: Decimal) -> int | None:
    """Dollars → pico-USD, rounded half to even; None where no span cost can be this."""
    try:
        with localcontext(prec=60):
            value = int(usd.quantize(_PICO, rounding=ROUND_HALF_EVEN).scaleb(12))
    except (InvalidOperation, ValueError, OverflowError):  # NaN, infinity, too many digits
        return None
    return value if 0 <= value <= MAX_SPAN else None


def scaled(dollars: float) -> int:
    """A number of dollars as asked (a filter's ``trace.cost > 0.5``) in pico-USD, rounded;
    unbounded: a comparison may name any amount."""
    exact = Decimal(repr(dollars)) if isinstance(dollars, float) else Decimal(dollars)
    return int(exact.scaleb(12).to_integral_value(rounding=ROUND_HALF_EVEN))


def trace_cost(total: int) -> int | None:
    """A trace's cost, the sum of its calls': None past ``MAX_TRACE`` (no bigint holds it)."""
    return total if total <= MAX_TRACE else None


def usd(value: int) -> Decimal:
    """Pico-USD → dollars, exactly, without trailing zeros (``Decimal('0.003875')``)."""
    if not value:
        return Decimal(0)
    return Decimal(value).scaleb(-12).normalize()


def text(value: int) -> str:
    """Pico-USD as a plain decimal string of dollars: what the API answers."""
    return format(usd(value), "f")


def shown(value: int, unpriced_calls: int) -> str | None:
    """A cost as answered: None where nothing was priced and some call was not (unknown is
    not $0)."""
    return None if unpriced_calls and not value else text(value)


def add(counts: Counter[str], name: str, value: int, sign: int = 1) -> None:
    """Add a cost (or take it out) under ``name`` as its two counters."""
    counts[name] += sign * (value & _LOW)
    counts[name + HI] += sign * (value >> SPLIT_BITS)


def read(counters: Mapping[str, float], name: str) -> int:
    """A cost aggregated under ``name``."""
    return int(counters.get(name, 0)) + (int(counters.get(name + HI, 0)) << SPLIT_BITS)


def by_name(counters: Mapping[str, float]) -> dict[str, int]:
    """A hash of costs only (name → its two counters) as name → cost."""
    found = {name.removesuffix(HI) for name in counters}
    return {name: read(counters, name) for name in found}
