import math

import pytest

from trace_insights.core import dimensions, sketch
from trace_insights.core.buckets import Resolution, bucket_start, bucket_starts
from trace_insights.core.npmi import npmi, strength
from trace_insights.core.records import SpanRecord, summarize, trace_times


@pytest.mark.parametrize(
    ("counts", "expected", "smoothed"),
    [
        ((10, 10, 10, 100), 1.0, 0.959),
        ((0, 20, 30, 100), -1.0, -0.479),
        ((10, 20, 50, 100), 0.0, 0.0),
        ((15, 40, 30, 100), 0.118, None),
    ],
)
def test_npmi_matches_mlflow(counts, expected, smoothed):
    result = npmi(*counts)
    assert result.npmi == pytest.approx(expected, abs=1e-3)
    if smoothed is not None:
        assert result.npmi_smoothed == pytest.approx(smoothed, abs=1e-3)


@pytest.mark.parametrize("counts", [(0, 0, 0, 0), (0, 0, 5, 10), (5, 4, 5, 10), (5, 8, 8, 10)])
def test_npmi_undefined_is_nan(counts):
    assert math.isnan(npmi(*counts).npmi)


def test_npmi_both_cover_everything():
    assert npmi(10, 10, 10, 10).npmi == 1.0


def test_strength_labels():
    assert [strength(v) for v in (0.8, -0.5, 0.2, 0.05)] == [
        "Strong",
        "Moderate",
        "Weak",
        "Negligible",
    ]


def test_buckets_are_utc_starts():
    ts = 1_735_689_600_000 + 3 * 3_600_000 + 17 * 60_000 + 5_000
    assert bucket_start(ts, Resolution.MINUTE) == ts - 5_000
    assert bucket_start(ts, Resolution.HOUR) == 1_735_689_600_000 + 3 * 3_600_000
    assert bucket_start(ts, Resolution.DAY) == 1_735_689_600_000
    assert bucket_starts(0, 3 * 3_600_000, Resolution.HOUR) == [0, 3_600_000, 7_200_000]


def _span(span_id, parent=None, kind="TOOL", status="OK", start=0, end=1, tool=None, model=None):
    return SpanRecord(
        trace_id="t",
        span_id=span_id,
        parent_span_id=parent,
        experiment_id="1",
        name=span_id,
        span_type=kind,
        status=status,
        status_message="",
        start_time_ns=start * 1_000_000,
        end_time_ns=end * 1_000_000,
        tool_name=tool,
        model=model,
        input_tokens=3,
        output_tokens=1,
        attributes={},
        trace_tags={"env": "prod"} if parent is None else {},
    )


def test_summary_follows_mlflow_rules_and_dimensions():
    spans = [
        _span("root", kind="AGENT", status="UNSET", start=0, end=1500),
        _span("a", "root", tool="search", status="ERROR", start=10, end=20),
        _span("b", "root", tool="search", start=30, end=40),
        _span("c", "root", kind="LLM", model="gpt", start=50, end=1600),
    ]
    summary = summarize("t", "1", spans)
    assert (summary.status, summary.timestamp_ms, summary.execution_time_ms) == ("OK", 0, 1600)
    assert (summary.input_tokens, summary.output_tokens, summary.span_count) == (12, 4, 4)
    assert summary.root_name == "root"
    assert summary.tags == {"env": "prod"}
    dims = dimensions.of_trace(summary, spans)
    assert {
        "status=OK",
        "span.type=AGENT",
        "span.type=TOOL",
        "span.type=LLM",
        "tools.search=used",
        "tools.search=error",
        "model=gpt",
        "tags.env=prod",
        "latency>1000",
        "count(span.type=TOOL)>1",
        "count(span.type=TOOL)>0",
    } <= dims
    assert "latency>2000" not in dims and "count(span.type=TOOL)>2" not in dims
    assert summarize("t", "1", spans[1:]).status == "IN_PROGRESS"

    class PastTheCaps(dimensions.CountedAs):
        def tag(self, key: str, value: str) -> str:
            return dimensions.OTHER

        def tool(self, name: str) -> str:
            return dimensions.OTHER

    capped = dimensions.of_trace(summary, spans, PastTheCaps())
    assert {"tags.env=__other__", "tools.__other__=used", "tools.__other__=error"} <= capped
    assert not any(d.startswith(("tags.env=prod", "tools.search")) for d in capped)
    assert dimensions.capped("tools.search=error") == ("tools.search=used", "tools.__other__=used")
    assert dimensions.capped("tags.env=prod") == ("tags.env=prod", "tags.env=__other__")
    assert dimensions.capped("model=gpt") is None
    overflow = ["tags.env=__other__", "tools.__other__=used", "tools.__other__=error"]
    assert all(dimensions.is_overflow(d) for d in overflow)
    assert not any(dimensions.is_overflow(d) for d in ("tags.env=prod", "tools.search=used"))
    with pytest.raises(dimensions.DimensionError, match="not a tool name"):
        dimensions.request("tools.__other__", {"value": "used"}, lambda name: [])


@pytest.mark.parametrize(
    ("start_ns", "end_ns", "times"),
    [
        # 1999.2 ms apart, but the end falls 2000 whole ms after the start's: MLflow says 2000
        (1_700_000_000_000_900_000, 1_700_000_002_000_100_000, (1_700_000_000_000, 2000)),
        (1_700_000_000_000_000_000, 1_700_000_001_999_999_999, (1_700_000_000_000, 1999)),
        (5_000_001, 5_000_001, (5, 0)),
    ],
)
def test_trace_times_floor_each_end_to_whole_ms_as_mlflow_does(start_ns, end_ns, times):
    assert trace_times(start_ns, end_ns) == times
    spans = [_span("root"), _span("x", "root")]  # the earliest start and the latest end
    spans[0].start_time_ns, spans[0].end_time_ns = start_ns, start_ns
    spans[1].start_time_ns, spans[1].end_time_ns = start_ns, end_ns
    summary = summarize("t", "1", spans)
    assert (summary.timestamp_ms, summary.execution_time_ms) == times


def test_sketch_blobs_are_versioned():
    digest = sketch.of_values([1.0, 2.0, 3.0])
    blob = sketch.dump(digest)
    assert blob[:1] == sketch.FORMAT_VERSION
    assert sketch.load(blob).n_values == 3
    assert sketch.merged({"p0": blob, "p1": blob}).n_values == 6
    with pytest.raises(sketch.SketchFormatError):
        sketch.load(b"\x09" + blob[1:])


def test_a_buckets_copies_merge_to_the_same_percentiles_in_any_order():
    """A t-digest merge depends on order; the store lists a bucket's per-partition copies in
    whatever order it holds them (Redis hash order, first write in memory), so the merge sorts
    them: the same data always answers the same percentiles. It once did not, and a contract
    test's median fell outside its rank tolerance only in some runs."""
    import random

    rnd = random.Random(3)
    blobs = {
        f"p{i}": sketch.dump(sketch.of_values([rnd.lognormvariate(7, 0.5) for _ in range(150)]))
        for i in range(6)
    }
    answers = set()
    for _ in range(10):
        fields = list(blobs)
        rnd.shuffle(fields)
        digest = sketch.merged({field: blobs[field] for field in fields})
        answers.add(tuple(digest.quantile(q) for q in (0.5, 0.9, 0.99)))
    assert len(answers) == 1
