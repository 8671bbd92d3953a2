"""The Redis key layout of the aggregates.

Every key of an experiment carries the hash tag ``{e:<experiment>}``, so one experiment's
update — its deltas and its per-partition fence — is one atomic operation in one Redis Cluster
hash slot. Sketch blobs are read, merged and rewritten by their writer, so each Kafka partition
owns its own copy (a field of the digests hash); readers merge the partitions' copies.
"""

import re

from trace_insights.core.buckets import Resolution

EXPERIMENTS = "ti:experiments"  # set of experiment ids (outside any slot; only ever added to)
PROGRESS = "ti:progress"  # hash: lag:<partition>, at:<partition> (consumer lag, reported when)


def _prefix(experiment_id: str) -> str:
    return f"ti:{{e:{experiment_id}}}"


def fence(experiment_id: str) -> str:
    """Hash: Kafka partition → last offset applied for this experiment."""
    return f"{_prefix(experiment_id)}:fence"


def meta(experiment_id: str) -> str:
    """Hash of facts about the experiment's aggregates as a whole (``fields.WATERMARK``,
    ``fields.GENERATION``)."""
    return f"{_prefix(experiment_id)}:meta"


def rebuilding(experiment_id: str) -> str:
    """String: the token of the rebuild under way (expires unless the rebuild goes on)."""
    return f"{_prefix(experiment_id)}:rebuilding"


def dirty(experiment_id: str) -> str:
    """Set of digests that hold a value a move could not take out, to recompute."""
    return f"{_prefix(experiment_id)}:dirty"


def changes(experiment_id: str) -> str:
    """Stream of applied updates: which buckets changed (live feeds, alert rules)."""
    return f"{_prefix(experiment_id)}:changes"


def bucket(experiment_id: str, resolution: Resolution, start_ms: int) -> str:
    """Hash of the bucket's counters, sums, minimums and maximums (fields in ``fields``)."""
    return f"{_prefix(experiment_id)}:b:{resolution}:{start_ms}"


def tag_values(experiment_id: str, resolution: Resolution, start_ms: int, key: str) -> str:
    """Hash: tag value (capped, else ``__other__``) → traces."""
    return f"{_prefix(experiment_id)}:tag:{resolution}:{start_ms}:{key}"


UNPRICED = "\x00unpriced"  # a tag cost hash's field suffix: unpriced calls (no NUL in values)


def tag_cost(experiment_id: str, resolution: Resolution, start_ms: int, key: str) -> str:
    """Hash: tag value (capped, else ``__other__``) → the cost of its traces (``core.money``'s
    two counters per value), and value + ``UNPRICED`` → their unpriced calls."""
    return f"{_prefix(experiment_id)}:tagcost:{resolution}:{start_ms}:{key}"


def tag_distinct(experiment_id: str, resolution: Resolution, start_ms: int, key: str) -> str:
    """HyperLogLog of the tag's raw values: distinct counts beyond the cap."""
    return f"{_prefix(experiment_id)}:hll:{resolution}:{start_ms}:{key}"


def tag_registry(experiment_id: str, key: str) -> str:
    """Set of the tag's values counted by name (at most the cap); the rest are ``__other__``."""
    return f"{_prefix(experiment_id)}:tagreg:{key}"


def tool_registry(experiment_id: str) -> str:
    """Set of the tool names counted by name (at most the cap); the rest are ``__other__``."""
    return f"{_prefix(experiment_id)}:toolreg"


def assessment_values(experiment_id: str, resolution: Resolution, start_ms: int, name: str) -> str:
    """Hash: JSON of an assessment value → traces whose assessment ``name`` has it now.

    Exact counts rather than a sketch, because an overwritten assessment moves its count."""
    return f"{_prefix(experiment_id)}:av:{resolution}:{start_ms}:{name}"


def is_registry(key: str) -> bool:
    """A tag's or the tool names' registry: kept by drops, so rebuilds admit the same names."""
    return "}:tagreg:" in key or key.endswith("}:toolreg")


def occurrences(experiment_id: str, resolution: Resolution, start_ms: int) -> str:
    """Hash: dimension → finalized traces having it."""
    return f"{_prefix(experiment_id)}:occ:{resolution}:{start_ms}"


def partners(experiment_id: str, resolution: Resolution, start_ms: int, dimension: str) -> str:
    """Hash: other dimension → finalized traces having both (all partners in one read)."""
    return f"{_prefix(experiment_id)}:co:{resolution}:{start_ms}:{dimension}"


def digests(experiment_id: str, resolution: Resolution, start_ms: int, metric: str) -> str:
    """Hash: Kafka partition → t-digest blob of ``metric`` (``latency``, ``tool:<name>``,
    ``model:<name>``). Each partition's field has one writer; readers merge all fields."""
    return f"{_prefix(experiment_id)}:td:{resolution}:{start_ms}:{metric}"


_BUCKETED = re.compile(r"\}:(?:b|tag|tagcost|hll|occ|co|td|av):([mhd]):(\d+)")


def bucket_of(key: str) -> tuple[str, int] | None:
    """The bucket (resolution, start) a key belongs to; None for keys outside time (fences,
    registries)."""
    match = _BUCKETED.search(key)
    return (match.group(1), int(match.group(2))) if match else None


def experiment_pattern(experiment_id: str) -> str:
    """Every key of the experiment (for rebuild)."""
    return f"{_prefix(experiment_id)}:*"


class fields:
    """Field names inside a bucket hash."""

    TRACES = "traces"
    LATE_SPANS = "late_spans"
    TOOL_TRACES = "tool_traces"  # traces that called any tool
    SPANS = "spans"
    LATENCY_SUM = "latency_sum"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    COST = "cost"  # of priced calls (core/money.py: two counters)
    UNPRICED_CALLS = "unpriced_calls"  # calls of a model with tokens and no price
    WATERMARK = "watermark"  # in the meta hash: the latest event time (trace start) applied
    # in the meta hash: the rebuild that made the aggregates whole (absent: they are not)
    GENERATION = "generation"

    @staticmethod
    def status(value: str) -> str:
        return f"status:{value}"

    @staticmethod
    def span_type(value: str) -> str:
        return f"type:{value}"

    @staticmethod
    def tool(name: str, what: str) -> str:
        """``what``: calls, errors, traces, latency_sum."""
        return f"tool:{name}:{what}"

    @staticmethod
    def model(name: str, what: str) -> str:
        """``what``: calls, input_tokens, output_tokens, latency_sum, cost, unpriced_calls."""
        return f"model:{name}:{what}"

    @staticmethod
    def provider(name: str, what: str) -> str:
        """``what``: calls, cost, unpriced_calls (of model calls; name "" when not reported)."""
        return f"provider:{name}:{what}"

    @staticmethod
    def tag_key(key: str) -> str:
        """Traces carrying the tag key."""
        return f"tagkey:{key}"

    @staticmethod
    def parse_tool(name: str) -> tuple[str, str] | None:
        """``tool:<name>:<what>`` → (name, what); names may hold colons."""
        return _parse(name, "tool:")

    @staticmethod
    def parse_model(name: str) -> tuple[str, str] | None:
        """``model:<name>:<what>`` → (name, what); names may hold colons (``llama3:8b``)."""
        return _parse(name, "model:")

    @staticmethod
    def parse_provider(name: str) -> tuple[str, str] | None:
        return _parse(name, "provider:")

    @staticmethod
    def parse_tag_key(name: str) -> str | None:
        return name[7:] if name.startswith("tagkey:") else None


def _parse(name: str, prefix: str) -> tuple[str, str] | None:
    if not name.startswith(prefix):
        return None
    subject, _, what = name[len(prefix) :].rpartition(":")
    return subject, what
