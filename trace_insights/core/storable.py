"""What the stores can hold: one rule per kind of value, used wherever values enter.

PostgreSQL text and jsonb cannot hold NUL; no UTF-8 encoder takes a lone surrogate; bigint is
int64 while OTLP times are uint64 nanoseconds; tag keys are at most 250 characters (MLflow's
limit). Text is made storable (each offending character becomes U+FFFD) and keys are cut, both
documented in docs/conventions.md; a span whose ids or times no column can hold is refused by
the collector (in OTLP ``partial_success``, with this reason) and skipped by the aggregator
when another producer of the topic wrote it; a token count no column can sum is no count.
"""

import re
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

REPLACEMENT = "\ufffd"
MAX_TIME_NS = 2**63 - 1  # bigint: 2262-04-11
MAX_TOKENS = 2**32 - 1  # per span: a trace's sum stays in a bigint up to 2^31 spans
KEY_CHARS = 250

_SURROGATE = re.compile("[\ud800-\udfff]")
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD (cheap when there are none:
    ASCII is told by a flag, and only other text is encoded to look for surrogates)."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            value = _SURROGATE.sub(REPLACEMENT, value)
    return value


def key(value: str) -> str:
    """A tag key: text, cut to ``KEY_CHARS`` characters, the last of a cut one being '…'."""
    value = text(value)
    return value if len(value) <= KEY_CHARS else value[: KEY_CHARS - 1] + "…"


def deep(value: Any) -> Any:
    """Every string of a decoded JSON value made storable, keys included."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [deep(item) for item in value]
    if isinstance(value, dict):
        return {text(str(k)): deep(v) for k, v in value.items()}
    return value


def tokens(count: int) -> int | None:
    """A token count, or None where it is none: negative, or past ``MAX_TOKENS``."""
    return count if 0 <= count <= MAX_TOKENS else None


def span_problem(span: Span) -> str | None:
    """Why ``span`` cannot be stored, in words for the sender; None if it can."""
    trace_id = span.trace_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        return "invalid trace_id (must be 16 bytes, not all zero)"
    span_id = span.span_id
    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        return "invalid span_id (must be 8 bytes, not all zero)"
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        return "invalid parent_span_id (must be empty or 8 bytes)"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    if span.end_time_unix_nano > MAX_TIME_NS:
        return f"end_time_unix_nano is past {MAX_TIME_NS} (int64 nanoseconds, the year 2262)"
    return None
