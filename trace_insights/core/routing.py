"""How spans are routed: to an experiment, and to a Kafka partition by trace id."""

import re

from kafka.partitioner.default import murmur2

EXPERIMENT_HEADER = "x-mlflow-experiment-id"
EXPERIMENT_ATTRIBUTE = "mlflow.experimentId"
DEFAULT_EXPERIMENT = "0"

_EXPERIMENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_experiment_id(value: str) -> str:
    """The id itself, or ValueError naming the rule it breaks."""
    if not _EXPERIMENT_ID.match(value):
        raise ValueError(
            f"experiment id {value!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
        )
    return value


def partition_for(trace_id: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key) with the 16 raw trace id bytes as key.

    Any producer that keys by trace id bytes with the default partitioner (the Java client,
    the OTel Collector's kafka exporter) lands a trace on the same partition as we do.
    """
    return (murmur2(trace_id) & 0x7FFFFFFF) % partitions
