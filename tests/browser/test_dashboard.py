"""The dashboard in a real browser against ``up``, fed by the OTel SDK's exporter: what it shows
is what the API answers for the same window, its controls do what they say, it follows the live
feed, and with a token set it shows nothing before the token."""

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support import (
    Running,
    export_spans,
    sdk_spans,
    service_env,
    start_up,
    traces_counted,
    wait_for,
)

pytestmark = pytest.mark.integration

INSIGHTS = "/api/3.0/mlflow/traces/insights"
EXPERIMENT = "ui"
TRACES = 150
TOKEN = "s3cret-token-for-the-browser-test"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_up(tmp_path_factory.mktemp("ui") / "data", service_env())
    try:
        export_spans(running.otlp_url, sdk_spans(TRACES, seed=7, error_rate=0.25), EXPERIMENT)
        wait_for(
            lambda: traces_counted(running.api_url, EXPERIMENT) == TRACES, 60, "traces counted"
        )
        _assess(running.api_url)
        yield running
    finally:
        running.stop()


def _assess(api_url: str) -> None:
    """Feedback of three types on the first traces, through the API, until it is counted."""
    found = httpx.post(
        f"{api_url}/api/3.0/mlflow/traces/search",
        json={"experiment_ids": [EXPERIMENT], "max_results": 60},
    ).json()["traces"]
    for i, trace in enumerate(found[:60]):
        for name, value in [("correct", "no" if i % 3 == 0 else "yes"), ("score", i % 7)] + (
            [("topic", ["billing", "weather", "travel"][i % 3])] if i < 30 else []
        ):
            reply = httpx.post(
                f"{api_url}/api/3.0/mlflow/traces/{trace['trace_id']}/assessments",
                json={"assessment": {"assessment_name": name, "feedback": {"value": value}}},
            )
            assert reply.status_code == 200, reply.text

    def counted() -> bool:
        body = {"experiment_ids": [EXPERIMENT]}
        data = httpx.post(f"{api_url}{INSIGHTS}/assessments/discovery", json=body).json()["data"]
        return {a["assessment_name"]: a["trace_count"] for a in data} == {
            "correct": 60,
            "score": 60,
            "topic": 30,
        }

    wait_for(counted, 60, "assessments counted")


def _open(page: Page, base: str, view: str, **params: str) -> dict[str, Any]:
    """Navigate to a view and wait for its first complete update; its request window."""
    query = "&".join(f"{k}={v}" for k, v in {"exp": EXPERIMENT, **params}.items())
    page.goto(f"{base}/#/{view}?{query}")
    return _updated(page, view)


def _updated(page: Page, view: str, after: int = 0) -> dict[str, Any]:
    main = page.locator("main")
    expect(main).to_have_attribute("data-view", view)
    deadline = time.monotonic() + 30
    while int(main.get_attribute("data-updates") or 0) <= after:
        assert time.monotonic() < deadline, f"{view} did not finish an update"
        page.wait_for_timeout(50)
    return json.loads(main.get_attribute("data-request") or "{}")


def _shown(page: Page, name: str) -> float | None:
    value = page.locator(f'[data-figure="{name}"]').get_attribute("data-value")
    return None if value in (None, "") else float(value)


def _post(deployment: Running, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(f"{deployment.api_url}{INSIGHTS}/{path}", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def _partners(page: Page, card: str) -> list[str]:
    block = page.locator(f'[data-card="{card}"] .correlations')
    expect(block.locator("ol, .empty").first).to_be_visible()
    return block.locator("li[data-partner]").evaluate_all("els => els.map(e => e.dataset.partner)")


def _ranked(deployment: Running, window: dict[str, Any], slice_: dict[str, Any]) -> list[str]:
    answer = _post(
        deployment, "dimensions/correlations", {**window, **slice_, "limit": 5, "min_support": 5}
    )
    return [
        f"{p['dimension']}={p['value']}"
        for p in answer["data"]
        if p["npmi_score"] is not None and p["npmi_score"] > 0.2
    ]


def test_traffic_shows_the_apis_figures_and_its_top_correlation(deployment, page):
    window = _open(page, deployment.api_url, "traffic", range="24h")
    volume = _post(deployment, "traffic-cost/volume", window)["summary"]
    latency = _post(deployment, "traffic-cost/latency", window)["summary"]
    errors = _post(deployment, "traffic-cost/errors", window)["summary"]
    tokens = _post(deployment, "traffic-cost/tokens", window)
    cost = _post(deployment, "traffic-cost/cost", window)
    assert volume["count"] == TRACES
    for key in ("count", "ok_count", "error_count"):
        assert _shown(page, f"volume.{key}") == volume[key]
    assert page.locator('[data-figure="volume.count"]').inner_text() == f"{TRACES} traces"
    for key in ("p50_latency", "p90_latency", "p99_latency", "avg_latency"):
        assert _shown(page, f"latency.{key}") == pytest.approx(latency[key], rel=1e-12)
    for key in ("error_rate", "error_count", "total_count"):
        assert _shown(page, f"errors.{key}") == pytest.approx(errors[key], rel=1e-12)
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        assert _shown(page, f"tokens.{key}") == tokens["summary"][key]
    rows = page.locator("[data-model]")
    assert rows.count() == len(tokens["models"])
    for model in tokens["models"]:
        cells = page.locator(f'[data-model="{model["model"]}"] td.num')
        assert cells.evaluate_all("c => c.map(e => e.dataset.value)") == [
            str(model["call_count"]),
            str(model["input_tokens"]),
            str(model["output_tokens"]),
            str(model["total_tokens"]),
            model["cost"] or "",  # the exact decimal string; unpriced: none
        ]
        if model["cost"] is None:
            assert cells.last.inner_text() == "unpriced"
    shown_cost = page.locator('[data-figure="cost.cost"]')
    assert shown_cost.get_attribute("data-value") == (cost["summary"]["cost"] or "")
    assert _shown(page, "cost.unpriced_calls") == cost["summary"]["unpriced_calls"]
    unpriced = cost["meta"]["unpriced_models"]
    assert unpriced, "the traffic calls a model no price is known for"
    note = page.locator('[data-card="cost"] p.unpriced').inner_text()
    assert all(m["model"] in note for m in unpriced)
    expected = _ranked(
        deployment, window, {"dimension": {"name": "status", "parameters": {"value": "ERROR"}}}
    )
    assert expected, "the traffic has a partner of its error traces to show"
    assert _partners(page, "errors") == expected
    assert page.locator("[data-chart] canvas").count() == 4
    assert page.console.errors == []


def test_quality_tools_and_tags_show_the_apis_figures(deployment, page):
    window = _open(page, deployment.api_url, "quality")
    for name in ("correct", "score", "topic"):
        summary = _post(deployment, "assessments/metrics", {**window, "assessment_name": name})[
            "summary"
        ]
        for key, value in summary.items():
            if key != "top_values":
                assert _shown(page, f"{name}.{key}") == pytest.approx(value, rel=1e-12), key
    topic = page.locator('[data-card="assessment:topic"] [data-label]')
    assert topic.evaluate_all("els => els.map(e => e.dataset.label)") == [
        v["value"]
        for v in _post(deployment, "assessments/metrics", {**window, "assessment_name": "topic"})[
            "summary"
        ]["top_values"]
    ]

    window = _open(page, deployment.api_url, "tools")
    discovered = _post(deployment, "tools/discovery", window)
    for key, value in discovered["summary"].items():
        assert _shown(page, f"tools.{key}") == value
    for tool in discovered["data"]:
        for key in ("invocation_count", "trace_count", "p50_latency", "error_rate"):
            assert _shown(page, f"tool:{tool['tool_name']}.{key}") == pytest.approx(tool[key])

    window = _open(page, deployment.api_url, "tags")
    for tag in _post(deployment, "tags/discovery", window)["data"]:
        for key in ("trace_count", "unique_values"):
            assert _shown(page, f"tag:{tag['tag_key']}.{key}") == tag[key]
    assert page.console.errors == []


def test_clicking_a_tag_value_makes_it_the_slice_of_the_correlations(deployment, page):
    window = _open(page, deployment.api_url, "tags")
    card = page.locator('[data-card="tag:user"]')
    values = card.locator("li[data-label]").evaluate_all("els => els.map(e => e.dataset.label)")
    assert len(values) > 1
    block = card.locator(".correlations")
    assert block.get_attribute("data-slice") == f"user = {values[0]}"
    before = _updated(page, "tags")
    updates = int(page.locator("main").get_attribute("data-updates") or 0)
    card.locator(f'li[data-label="{values[1]}"] button').click()
    _updated(page, "tags", after=updates)
    expect(page.locator(".slice")).to_contain_text(f"user = {values[1]}")
    for each in page.locator("[data-card^='tag:'] .correlations").all():
        assert each.get_attribute("data-slice") == f"user = {values[1]}"
    chosen = {"dimension": {"name": "tags.user", "parameters": {"value": values[1]}}}
    assert _partners(page, "tag:user") == _ranked(deployment, before, chosen)
    page.get_by_role("button", name="Clear selection").click()
    expect(page.locator(".slice")).to_have_count(0)
    assert window["experiment_ids"] == [EXPERIMENT]


def test_a_malformed_filter_shows_the_servers_parse_error_at_its_position(deployment, page):
    _open(page, deployment.api_url, "traces")
    bad = "span.type = 'TOOL' AND trace.status ="
    page.locator("#filter").fill(bad)
    page.get_by_role("button", name="Search").click()
    problem = page.locator('[data-problem="filter"]')
    expect(problem).to_be_visible()
    reply = httpx.post(
        f"{deployment.api_url}/api/3.0/mlflow/traces/search",
        json={"experiment_ids": [EXPERIMENT], "filter": bad},
    )
    assert reply.status_code == 400
    assert "position 37" in reply.json()["message"]
    lines = problem.inner_text().split("\n")
    assert lines[0] == reply.json()["message"]
    assert bad in lines
    assert lines[lines.index(bad) + 1] == " " * 37 + "^"
    expected = [e for e in page.console.errors if "400 (Bad Request)" not in e]
    assert expected == [], "the 400 of the search is the only console error"


def test_a_trace_opens_with_all_its_spans_in_the_waterfall(deployment, page):
    _open(page, deployment.api_url, "traces", filter="trace.status = 'ERROR'")
    first = page.locator("tr[data-trace]").first
    trace_id = first.get_attribute("data-trace")
    first.click()
    spans = httpx.get(f"{deployment.api_url}/api/3.0/mlflow/traces/{trace_id}").json()["trace"][
        "data"
    ]["spans"]
    rows = page.locator(".span-row")
    expect(rows).to_have_count(len(spans))
    assert sorted(rows.evaluate_all("els => els.map(e => e.dataset.span)")) == sorted(
        s["span_id"] for s in spans
    )
    expect(page.locator("pre.attributes")).to_be_visible()
    assert f"trace={trace_id}" in page.url
    assert page.console.errors == []


def test_a_new_trace_raises_the_count_without_a_reload(deployment, page):
    live = f"live-{uuid.uuid4().hex[:6]}"
    export_spans(deployment.otlp_url, sdk_spans(1, seed=1), live)
    wait_for(lambda: traces_counted(deployment.api_url, live) == 1, 30, "first trace")
    page.goto(f"{deployment.api_url}/#/traffic?exp={live}&range=1h")
    _updated(page, "traffic")
    expect(page.locator('[data-figure="volume.count"]')).to_have_attribute("data-value", "1")
    page.evaluate("window.__same_document = true")
    expect(page.locator("#live")).to_have_attribute("aria-pressed", "true")
    export_spans(deployment.otlp_url, sdk_spans(2, seed=2), live)
    expect(page.locator('[data-figure="volume.count"]')).to_have_attribute(
        "data-value", "3", timeout=15_000
    )
    assert page.evaluate("window.__same_document") is True, "the page was not reloaded"
    assert page.console.errors == []


def test_an_alert_rule_created_in_the_form_is_returned_by_the_api(deployment, page):
    _open(page, deployment.api_url, "alerts")
    page.get_by_role("button", name="New rule").click()
    form = page.locator('[data-card="rule-form"] form')
    name = f"errors-{uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Webhooks").fill("ftp://hooks.example.com/x")
    form.get_by_label("Threshold").fill("10")
    form.get_by_role("button", name="Create").click()
    problem = form.locator('[data-problem="rule"]')
    expect(problem).to_contain_text("webhooks")  # the API's validation message, in the form
    form.get_by_label("Webhooks").fill("https://hooks.example.com/trace-insights")
    form.get_by_role("button", name="Create").click()
    expect(page.locator("tr[data-rule]", has_text=name)).to_be_visible()
    rules = httpx.get(f"{deployment.api_url}{INSIGHTS}/alerts").json()["rules"]
    [rule] = [r for r in rules if r["name"] == name]
    assert (rule["metric"], rule["threshold"], rule["experiment_ids"]) == (
        "error_rate",
        10,
        [EXPERIMENT],
    )
    assert rule["webhooks"] == ["https://hooks.example.com/trace-insights"]
    # the traffic's error rate is above 10%: the rule fires, and its log shows the delivery
    deliveries = f"{deployment.api_url}{INSIGHTS}/alerts/{rule['rule_id']}/deliveries"
    wait_for(lambda: httpx.get(deliveries).json()["deliveries"], 30, "the rule to fire")
    page.reload()
    log = page.locator('[data-card="deliveries"] tbody tr')
    expect(log.first).to_contain_text("firing")
    expect(log.first).to_contain_text("https://hooks.example.com/trace-insights")
    assert [e for e in page.console.errors if "400 (Bad Request)" not in e] == []


def test_a_cost_rule_on_a_tag_key_is_created_in_the_form(deployment, page):
    """A cost rule for any user above $0: the form's cost fields become its parameters."""
    _open(page, deployment.api_url, "alerts")
    page.get_by_role("button", name="New rule").click()
    form = page.locator('[data-card="rule-form"] form')
    expect(form.get_by_label("Tag value (optional)")).to_be_hidden()  # cost only
    name = f"spend-{uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Metric").select_option("cost")
    form.get_by_label("Tag key (alone: its costliest value) (optional)").fill("user")
    form.get_by_label("Threshold").fill("0")
    form.get_by_label("Window (seconds)").fill("86400")
    form.get_by_label("Webhooks").fill("https://hooks.example.com/spend")
    form.get_by_role("button", name="Create").click()
    row = page.locator("tr[data-rule]", has_text=name)
    expect(row).to_contain_text("cost (USD) · any user")
    rules = httpx.get(f"{deployment.api_url}{INSIGHTS}/alerts").json()["rules"]
    [rule] = [r for r in rules if r["name"] == name]
    assert rule["metric"] == "cost" and rule["parameters"]["tag_key"] == "user"
    assert rule["parameters"]["model"] is None and rule["parameters"]["tag_value"] is None
    assert page.console.errors == []


def test_a_deep_link_restores_the_view_after_a_reload(deployment, page):
    _open(page, deployment.api_url, "tools", range="7d", bucket="day", tz="Asia/Kolkata")
    page.reload()
    window = _updated(page, "tools")
    assert (window["time_bucket"], window["timezone"]) == ("day", "Asia/Kolkata")
    assert window["end_time"] - window["start_time"] == 7 * 86_400_000
    expect(page.locator('nav a[aria-current="page"]')).to_have_text("Tools")
    expect(page.locator('[data-range="7d"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#bucket")).to_have_value("day")
    expect(page.locator("#timezone")).to_have_value("Asia/Kolkata")
    expect(page.locator("#experiment")).to_have_value(EXPERIMENT)
    page.go_back()  # the history holds the views visited
    assert page.console.errors == []


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    running = start_up(tmp_path_factory.mktemp("auth") / "data", service_env(auth_token=TOKEN))
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        export_spans(running.otlp_url, sdk_spans(3, seed=3), EXPERIMENT, headers)
        body = {"experiment_ids": [EXPERIMENT]}

        def counted() -> bool:
            reply = httpx.post(
                f"{running.api_url}{INSIGHTS}/traffic-cost/volume", json=body, headers=headers
            )
            return reply.status_code == 200 and reply.json()["summary"]["count"] == 3

        wait_for(counted, 60, "traces counted")
        yield running
    finally:
        running.stop()


def test_with_a_token_set_the_page_shows_nothing_before_the_token(guarded, page, tmp_path: Path):
    page.goto(f"{guarded.api_url}/#/traffic")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    assert page.locator("[data-figure]").count() == 0
    assert page.locator("#experiment option").count() == 0
    page.screenshot(path=tmp_path / "before.png")
    page.locator("#token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_visible()
    expect(page.locator("#token-error")).to_have_text("That token was not accepted.")
    assert page.locator("[data-figure]").count() == 0
    page.locator("#token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator('[data-figure="volume.count"]')).to_have_attribute("data-value", "3")
    expect(dialog).to_be_hidden()
    unexpected = [e for e in page.console.errors if "401 (Unauthorized)" not in e]
    assert unexpected == []


def test_a_spans_attributes_status_and_events_show_when_it_is_picked(deployment, page):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    with (
        tracer.start_as_current_span("plan") as root,
        tracer.start_as_current_span("lookup", attributes={"k": "v"}) as child,
    ):
        child.add_event("retrying")
        child.add_event("gave up")
        child.set_status(Status(StatusCode.ERROR, "backend timed out"))
    trace_id = f"tr-{root.get_span_context().trace_id:032x}"
    experiment = f"events-{uuid.uuid4().hex[:6]}"
    export_spans(deployment.otlp_url, list(memory.get_finished_spans()), experiment)
    wait_for(lambda: traces_counted(deployment.api_url, experiment) == 1, 30, "the trace")
    page.goto(f"{deployment.api_url}/#/traces?exp={experiment}&range=1h&trace={trace_id}")
    rows = page.locator(".span-row")
    expect(rows).to_have_count(2)
    rows.filter(has_text="lookup").click()
    expect(page.locator(".events")).to_have_text("Events: retrying · gave up")
    expect(page.get_by_text("backend timed out")).to_be_visible()
    expect(page.get_by_label("Attributes")).to_contain_text('"k": "v"')
    assert page.console.errors == []


def test_whats_different_compares_a_picked_slice_with_the_rest(deployment, page):
    window = _open(page, deployment.api_url, "explore")
    updates = int(page.locator("main").get_attribute("data-updates") or 0)
    options = page.locator("#slice-dimension option").evaluate_all("os => os.map(o => o.value)")
    choice = next(o for o in options if json.loads(o or "null") == ["tools.web_search", "error"])
    page.locator("#slice-dimension").select_option(choice)
    _updated(page, "explore", after=updates)
    answer = _post(
        deployment,
        "dimensions/correlations",
        {
            **window,
            "dimension": {"name": "tools.web_search", "parameters": {"value": "error"}},
            "limit": 1000,
            "min_support": 1,
        },
    )
    expect(page.locator(".slice")).to_contain_text(
        f"{answer['dimension']['count']} of {answer['total_count']} traces"
    )
    families = {p["dimension"] for p in answer["data"]}
    shown = page.locator("[data-card^='family:']").evaluate_all(
        "els => els.map(e => e.dataset.card.slice(7))"
    )
    assert set(shown) == families
    best = answer["data"][0]
    first = page.locator(f"[data-card='family:{best['dimension']}'] li").first
    assert first.get_attribute("data-partner") == f"{best['dimension']}={best['value']}"
    first.get_by_role("button", name="+").click()  # the value joins the slice's filter
    expect(page.locator("#slice-filter")).to_have_value(
        f"({answer['dimension']['filter_string']}) AND ({best['filter_string']})"
    )
    assert page.console.errors == []


def test_the_views_work_from_the_keyboard(deployment, page):
    _open(page, deployment.api_url, "traffic")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("link", name="Tags").focus()
    page.keyboard.press("Enter")
    _updated(page, "tags")
    value = page.locator('[data-card="tag:user"] li[data-label] button').nth(1)
    label = value.inner_text()
    value.focus()
    page.keyboard.press("Space")
    expect(page.locator(".slice")).to_contain_text(f"user = {label}")
    page.get_by_role("button", name="Clear selection").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".slice")).to_have_count(0)
    assert page.console.errors == []


def test_feedback_added_in_the_trace_view_is_stored(deployment, page):
    _open(page, deployment.api_url, "traces")
    first = page.locator("tr[data-trace]").first
    trace_id = first.get_attribute("data-trace")
    first.click()
    form = page.get_by_role("form", name="Add feedback")
    form.get_by_label("Name", exact=True).fill("from_the_ui")
    form.get_by_label("Value").fill("no")
    form.get_by_label("Rationale").fill("wrong tool")
    form.get_by_role("button", name="Add feedback").click()
    expect(page.get_by_role("status").filter(has_text="Feedback recorded")).to_be_visible()

    def stored() -> list[dict[str, Any]]:
        trace = httpx.get(f"{deployment.api_url}/api/3.0/mlflow/traces/{trace_id}").json()
        return [
            a
            for a in trace["trace"]["trace_info"]["assessments"]
            if a["assessment_name"] == "from_the_ui"
        ]

    wait_for(stored, 30, "the feedback stored")
    [assessment] = stored()
    assert (assessment["feedback"]["value"], assessment["rationale"]) == ("no", "wrong tool")
    assert assessment["source"]["source_type"] == "HUMAN"
    assert page.console.errors == []


def test_a_narrow_window_needs_no_sideways_scrolling(deployment, page):
    page.set_viewport_size({"width": 420, "height": 900})
    for view in ("traffic", "quality", "tools", "tags", "explore", "traces", "alerts"):
        _open(page, deployment.api_url, view)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420, f"{view} is {width} px wide"
    assert page.console.errors == []


def test_view_traces_on_a_card_opens_the_list_filtered_to_it(deployment, page):
    _open(page, deployment.api_url, "tools")
    page.locator('[data-card="tool:web_search"] h2 a', has_text="view traces").click()
    window = _updated(page, "traces")
    expect(page.locator("#filter")).to_have_value("span.tool_name = 'web_search'")
    found = httpx.post(
        f"{deployment.api_url}/api/3.0/mlflow/traces/search",
        json={
            "experiment_ids": [EXPERIMENT],
            "filter": "span.tool_name = 'web_search'",
            "start_time": int(window["start_time"]),
            "end_time": int(window["end_time"]),
            "max_results": 25,
        },
    ).json()["traces"]
    assert found
    shown = page.locator("tr[data-trace]").evaluate_all("rows => rows.map(r => r.dataset.trace)")
    assert shown == [t["trace_id"] for t in found]
    assert page.console.errors == []
