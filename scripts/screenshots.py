"""Renders the dashboard's views into docs/img/ from a fresh ``trace-insights up --demo``.

Run by hand: ``.venv/bin/python scripts/screenshots.py [--seconds 40]``. The demo's traffic
runs for ``--seconds`` (its judge logs ``correct``); then numeric and string feedback is added
(so Quality shows each kind of card) and one alert rule is created, and headless Chromium
(Debian's ``chromium``) takes each view at 1280x800, plus Traffic & Cost in a narrow window.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from tests.support import (  # noqa: E402
    free_ports,
    service_env,
    start_process,
)

OUT = ROOT / "docs" / "img"
VIEWS = ["traffic", "quality", "tools", "tags", "explore", "traces", "alerts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40, help="demo traffic before shots")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="trace-insights-shots-"))
    api, http, grpc = free_ports()
    ports = ["--api-port", str(api), "--otlp-http-port", str(http), "--otlp-grpc-port", str(grpc)]
    command = ["up", "--demo", "--data-dir", str(data / "data"), *ports]
    running = start_process(command, service_env(), api, http)
    try:
        time.sleep(args.seconds)
        _feedback(running.api_url)
        _rule(running.api_url)
        time.sleep(2)
        _shoot(running.api_url)
    finally:
        running.stop()
        shutil.rmtree(data, ignore_errors=True)


def _feedback(base: str) -> None:
    traces = httpx.post(
        f"{base}/api/3.0/mlflow/traces/search", json={"experiment_ids": ["0"], "max_results": 120}
    ).json()["traces"]
    for i, trace in enumerate(traces):
        for name, value in [
            ("helpfulness", round(1 + (i * 7 % 40) / 10, 1)),
            ("topic", ["billing", "weather", "travel", "support"][i % 4]),
        ]:
            httpx.post(
                f"{base}/api/3.0/mlflow/traces/{trace['trace_id']}/assessments",
                json={
                    "assessment": {
                        "assessment_name": name,
                        "source": {"source_type": "LLM_JUDGE", "source_id": "judge-v1"},
                        "feedback": {"value": value},
                    }
                },
            ).raise_for_status()


def _rule(base: str) -> None:
    httpx.post(
        f"{base}/api/3.0/mlflow/traces/insights/alerts",
        json={
            "name": "checkout errors",
            "experiment_ids": ["0"],
            "metric": "error_rate",
            "comparator": ">",
            "threshold": 10,
            "window_s": 300,
            "webhooks": ["https://hooks.example.com/trace-insights"],
        },
    ).raise_for_status()


def _settled(page: Page) -> None:
    page.wait_for_selector("main[data-updates]:not([data-updates='0'])", state="attached")
    page.wait_for_timeout(500)


def _shoot(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.emulate_media(reduced_motion="reduce")
        for view in VIEWS:
            page.goto(f"{base}/#/{view}?exp=0&range=1h")
            _settled(page)
            if view == "traces":
                page.locator("tr[data-trace]").first.click()
                page.wait_for_selector(".span-row")
                page.wait_for_timeout(300)
            if view == "alerts":
                page.locator("tr[data-rule] button", has_text="Edit").first.click()
                page.wait_for_selector('[data-card="deliveries"]')
            page.screenshot(path=OUT / f"{view}.png", full_page=view != "traces")
            print(OUT / f"{view}.png")
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{base}/#/traffic?exp=0&range=1h")
        _settled(page)
        page.screenshot(path=OUT / "traffic-narrow.png")
        print(OUT / "traffic-narrow.png")
        browser.close()


if __name__ == "__main__":
    main()
