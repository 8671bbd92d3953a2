"""What users install must run: the built wheel, installed into a fresh virtualenv with its
declared dependencies only (no extras, nothing of this checkout on the path), adds one import
package, imports every module, and runs every subcommand — ``up`` on its own, and the cluster
processes over the real Kafka, Redis and PostgreSQL. The guard of every dependency change."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import typer

from tests.support import (
    ROOT,
    free_ports,
    schema_url,
    service_env,
    start_aggregator,
    start_collector,
    start_process,
    start_up,
    trace_insights,
    traces_counted,
    wait_for,
)
from trace_insights.cli import app

pytestmark = pytest.mark.integration

SERVICES = {"collector": "collector", "aggregator": "aggregator", "api": "api"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The ``trace-insights`` command of a fresh virtualenv holding the wheel of this checkout."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # the files git would commit: no build/ or egg-info of old builds
    for name in _run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"
    ).stdout.split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(root / "dist"), str(source))
    [wheel] = (root / "dist").glob("trace_insights-*.whl")
    _run(sys.executable, "-m", "venv", str(root / "venv"))
    _run(str(root / "venv/bin/pip"), "install", "--disable-pip-version-check", str(wheel))
    return (str(root / "venv/bin/trace-insights"),)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory away from the checkout, so nothing of it can be imported."""
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def test_the_wheel_adds_one_import_package_with_every_module(installed, outside):
    python = str(Path(installed[0]).with_name("python"))
    probe = (
        "import importlib, importlib.metadata as m, json, pkgutil, trace_insights\n"
        "files = [str(f) for f in m.files('trace-insights')]\n"
        "found = pkgutil.walk_packages(trace_insights.__path__, 'trace_insights.')\n"
        "modules = [i.name for i in found if not i.name.endswith('__main__')]\n"
        "for name in modules: importlib.import_module(name)\n"
        "print(json.dumps({'files': files, 'modules': modules}))\n"
    )
    shipped = json.loads(_run(python, "-c", probe, cwd=outside).stdout)
    top = {f.split("/")[0] for f in shipped["files"] if not f.startswith("..")}
    assert {t for t in top if not t.endswith(".dist-info")} == {"trace_insights"}
    assert set(shipped["modules"]) == _source_modules(), "every module of the checkout ships"
    migrations = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "trace_insights/truth/migrations").rglob("*")
        if path.suffix in (".py", ".mako")
    }
    assert len(migrations) > 7 and migrations <= set(shipped["files"]), "the migrations ship"


def test_every_subcommand_answers_help(installed, outside):
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"up", "collector", "aggregator", "api", "migrate", "rebuild", "generate"} <= set(
        commands
    )
    for name in commands:
        shown = _run(*installed, name, "--help", cwd=outside)
        assert "Usage:" in shown.stdout, name


def test_up_ingests_a_span_and_serves_it(installed, outside):
    sys.path.insert(0, str(ROOT / "scripts"))

    running = start_up(outside / "data", service_env(), command=installed, cwd=outside)
    try:
        trace_id = uuid.uuid4().hex
        sent = httpx.post(
            f"{running.otlp_url}/v1/traces",
            json=_one_span(trace_id),
            headers={"x-mlflow-experiment-id": "wheel"},
        )
        assert sent.status_code == 200, sent.text
        trace = f"{running.api_url}/api/3.0/mlflow/traces/tr-{trace_id}"
        wait_for(lambda: httpx.get(trace).status_code == 200, 30, "the span to be stored")
        [span] = httpx.get(trace).json()["trace"]["data"]["spans"]
        assert span["name"] == "installed"
        # the aggregates follow the stored span (the row is committed first)
        wait_for(lambda: traces_counted(running.api_url, "wheel") == 1, 30, "the span counted")
        # the dashboard ships inside the wheel: the page and every asset it names
        page = httpx.get(f"{running.api_url}/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for asset in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text):
            assert httpx.get(f"{running.api_url}{asset}").status_code == 200, asset
        app = httpx.get(f"{running.api_url}/ui/js/app.js").text
        for module in re.findall(r'from "\./(views/[a-z]+\.js)"', app):
            assert httpx.get(f"{running.api_url}/ui/js/{module}").status_code == 200, module
    finally:
        assert running.stop() == 0, "up stops cleanly on SIGINT"


def test_the_cluster_processes_run_from_the_wheel(
    installed, outside, kafka_servers, redis_url, database_url
):
    sys.path.insert(0, str(ROOT / "scripts"))

    _, database = schema_url(database_url)
    experiment = f"wheel-{uuid.uuid4().hex[:8]}"
    topic = f"spans-{uuid.uuid4().hex[:12]}"
    settings = dict(
        kafka_bootstrap_servers=kafka_servers,
        redis_url=redis_url,
        database_url=database,
        spans_topic=topic,
        topic_partitions=2,
    )
    wheel = dict(command=installed, cwd=outside)
    assert trace_insights("migrate", **wheel, database_url=database).returncode == 0
    collector = start_collector(kafka_servers, topic, **wheel)
    aggregator = start_aggregator(**wheel, consumer_group=f"g-{topic}", **settings)
    api_port = free_ports()[0]
    api = start_process(
        ["api", "--api-port", str(api_port)], service_env(**settings), api_port, api_port, **wheel
    )

    try:
        sent = trace_insights(
            "generate",
            "--endpoint",
            collector.http_url,
            "--traces",
            "5",
            "--rate",
            "0",
            "--experiment-id",
            experiment,
            "--seed",
            "3",
            **wheel,
        )
        assert sent.returncode == 0, sent.stderr
        wait_for(
            lambda: traces_counted(api.api_url, experiment) == 5,
            60,
            "the generated traces to be aggregated",
        )
        aggregator.terminate()
        assert aggregator.wait(30) == 0
        rebuilt = trace_insights("rebuild", **wheel, **settings)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "rebuilt the aggregates of 5 traces" in rebuilt.stdout
        assert traces_counted(api.api_url, experiment) == 5
    finally:
        assert api.stop() == 0
        if aggregator.poll() is None:
            aggregator.terminate()
            aggregator.wait(30)
        collector.stop()


def _source_modules() -> set[str]:
    """Every module git would commit, by the name it is installed under."""
    packages = {"trace_insights": "trace_insights", **{f: f"trace_insights.{f}" for f in SERVICES}}
    names = set()
    for tracked in _run(
        "git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"
    ).stdout.split():
        folder, *parts = Path(tracked).with_suffix("").parts
        if folder in packages and "migrations" not in parts and parts[-1] != "__main__":
            names.add(".".join((packages[folder], *parts)).removesuffix(".__init__"))
    return names - {"trace_insights"}  # walk_packages lists what is below the package


def _one_span(trace_id: str) -> dict:
    now = time.time_ns()
    span = {
        "traceId": trace_id,
        "spanId": os.urandom(8).hex(),
        "name": "installed",
        "kind": 1,
        "startTimeUnixNano": str(now),
        "endTimeUnixNano": str(now + 5_000_000),
        "status": {"code": 1},
    }
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=600, env=service_env()
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done
