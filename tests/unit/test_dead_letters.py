"""A record the aggregator cannot apply for what it holds is kept whole as a dead letter and
the partition goes on; the rest of its batch is applied; after a fix, a replay counts it once.
Outages are not dead letters: they are waited out."""

import pytest
import redis.exceptions
import sqlalchemy.exc

from tests.support import publish_to_bus, sdk_spans
from tests.unit.conftest import embedded
from trace_insights.aggregator import loop
from trace_insights.aggregator.truth import dead_letters
from trace_insights.outages import is_outage

VOLUME = "/api/3.0/mlflow/traces/insights/traffic-cost/volume"


class _State(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.exceptions.ConnectionError("gone"), True),
        (redis.exceptions.ReadOnlyError("replica"), True),
        (redis.exceptions.ResponseError("increment would overflow"), False),
        (sqlalchemy.exc.OperationalError("s", {}, _State("57P01")), True),  # admin shutdown
        (sqlalchemy.exc.OperationalError("s", {}, _State("54000")), False),  # index row too big
        (sqlalchemy.exc.OperationalError("s", {}, Exception("no server reply")), True),
        (sqlalchemy.exc.DataError("s", {}, _State("22021")), False),
        (ConnectionRefusedError(), True),
        (OverflowError("int too large"), False),
    ],
)
def test_outages_are_told_from_errors_of_content(error, outage):
    assert is_outage(error) is outage


def _count(api, experiment: str) -> int:
    reply = api.client.post(VOLUME, json={"experiment_ids": [experiment]})
    return int(reply.json()["summary"]["count"])


def test_a_record_that_fails_for_its_content_is_kept_and_replayed_once_fixed(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    with embedded(tmp_path) as api:
        context = api.client.app.state.context
        spans = sdk_spans(6, seed=11)
        poison = format(spans[0].context.trace_id, "032x")
        publish_to_bus(api.bus, spans, "a", chunk=5)  # several records a partition
        real = loop.write_batch

        def write_batch(connection, partition, batch, *rest):  # type: ignore[no-untyped-def]
            if any(delivery.span.trace_id == poison for delivery in batch):
                raise OverflowError("a value no column holds")  # what one record holds
            return real(connection, partition, batch, *rest)

        monkeypatch.setattr(loop, "write_batch", write_batch)
        api.drain()
        with context.engine.connect() as connection:
            kept = dead_letters.listed(connection)
        assert kept and {letter.stage for letter in kept} == {"truth"}
        assert all("OverflowError" in letter.error and letter.payload for letter in kept)
        assert api.bus.drained(), "the partition went on past the dead letters"
        assert 0 < _count(api, "a") < 6, "the other records of the batch were applied"

        monkeypatch.undo()  # the fix
        with context.engine.begin() as connection:
            assert dead_letters.request_replay(connection, None) == len(kept)
        assert api.aggregator.replay_due(0) == len(kept)
        api.drain()
        assert _count(api, "a") == 6
        assert api.aggregator.replay_due(0) == 0, "each is replayed once"
        api.drain()
        assert _count(api, "a") == 6
        with context.engine.connect() as connection:
            assert all(letter.replayed_ms for letter in dead_letters.listed(connection))


def test_an_undecodable_record_is_kept_beside_a_good_batch(tmp_path):
    with embedded(tmp_path) as api:
        context = api.client.app.state.context
        api.bus.append(1, b"\x0a\xff\xff\xff\xff\x0f not protobuf", 0)
        publish_to_bus(api.bus, sdk_spans(3, seed=12), "b")
        api.drain()
        with context.engine.connect() as connection:
            [letter] = dead_letters.listed(connection)
        assert (letter.src_partition, letter.stage) == (1, "decode")
        assert letter.payload.startswith(b"\x0a\xff")
        assert _count(api, "b") == 3


def test_one_unreadable_group_of_a_coalesced_record_does_not_take_the_others_with_it(tmp_path):
    """Another producer's record (the collector refuses such nesting) holding one resource group
    too deeply nested to parse beside readable ones: those are applied, the record is kept."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from trace_insights.core.routing import EXPERIMENT_ATTRIBUTE

    good = encode_spans(sdk_spans(4, seed=13))
    for group in good.resource_spans:
        group.resource.attributes.add(key=EXPERIMENT_ATTRIBUTE).value.string_value = "c"
    deep = good.resource_spans.add()  # one more group, too deep to parse (serializing is fine)
    span = deep.scope_spans.add().spans.add(trace_id=b"\x07" * 16, span_id=b"\x08" * 8)
    value = span.attributes.add(key="deep").value
    for _ in range(60):
        value = value.array_value.values.add()
    payload = good.SerializeToString()
    with embedded(tmp_path) as api:
        context = api.client.app.state.context
        api.bus.append(0, payload, 0)
        api.drain()
        assert _count(api, "c") == 4
        with context.engine.connect() as connection:
            [letter] = dead_letters.listed(connection)
        assert letter.stage == "decode" and letter.payload == payload
