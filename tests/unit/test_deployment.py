"""The container image, docker-compose file and Helm chart, proven offline: parsed, rendered
with several value sets, validated against the Kubernetes API schemas, and checked for the
properties a cluster operator relies on."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from trace_insights.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trace-insights"
KUBERNETES = "1.33.0"
SETTINGS = {f"TRACE_INSIGHTS_{name.upper()}" for name in Settings.model_fields}
EXTERNAL = {
    "kafka": {"bootstrapServers": "kafka-0.kafka:9092,kafka-1.kafka:9092"},
    "redis": {"url": "redis://redis-master:6379/0"},
    "database": {"url": "postgresql+psycopg://insights@postgres:5432/trace_insights"},
}


def test_the_image_is_multi_stage_slim_and_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(bases) == 2 and all("slim" in base for base in bases)
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["trace-insights"]' in dockerfile


def test_compose_is_consistent_with_the_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "postgres",
        "migrate",
        "collector",
        "aggregator",
        "api",
    }
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image"
        if name != "migrate":
            assert "healthcheck" in service, f"{name} has a health check"
        for variable in service.get("environment", {}):
            if variable.startswith("TRACE_INSIGHTS_"):
                assert variable in SETTINGS, f"{name}: {variable} is not a setting"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["aggregator"]["deploy"]["replicas"] == 2
    defaults = Settings()
    assert services["collector"]["ports"] == [
        f"{defaults.otlp_http_port}:4318",
        f"{defaults.otlp_grpc_port}:4317",
    ]
    assert services["api"]["ports"] == [f"{defaults.api_port}:8000"]
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("aggregator", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounts = services["postgres"]["volumes"]
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in mounts
    init = (ROOT / "deploy" / "postgres" / "01-pg-trgm.sql").read_text()
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in init
    named = {
        m.split(":")[0]
        for s in services.values()
        for m in s.get("volumes", [])
        if not m.startswith(".")
    }
    assert named <= set(compose["volumes"])
    if _compose_plugin():  # where the compose plugin exists, it must agree
        subprocess.run(
            ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            check=True,
        )


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return probe.returncode == 0


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values, name="ti", namespace="observability", is_install=True)
    documents = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


VALUE_SETS = {
    "dev trial": {"dev": {"enabled": True}},
    "external services": EXTERNAL,
    "ingress, monitoring, network policy": {
        **EXTERNAL,
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "insights.example.com", "api": True, "otlpHttp": True}],
        },
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True},
        "auth": {"token": "s3cret"},
    },
    "HPA off, existing secret": {
        **{k: v for k, v in EXTERNAL.items() if k != "database"},
        "existingSecret": "insights-credentials",
        "collector": {"autoscaling": {"enabled": False}, "replicas": 3},
        "api": {"autoscaling": {"enabled": False}},
        "aggregator": {"replicas": 12},
    },
}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_chart_renders_valid_manifests_with_safe_defaults(values):
    report = helm_python.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
    assert not report["errors"]
    assert not [m for m in report["messages"] if m["severity"] >= 2], report["messages"]
    documents = _render(values)
    kinds = {doc["kind"] for doc in documents}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for doc in documents:
        if doc["kind"] != "ServiceMonitor":  # a CRD, not in the core schemas
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    settings = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    assert set(settings) <= SETTINGS
    ports = {
        "collector": {
            int(settings["TRACE_INSIGHTS_OTLP_HTTP_PORT"]),
            int(settings["TRACE_INSIGHTS_OTLP_GRPC_PORT"]),
        },
        "api": {int(settings["TRACE_INSIGHTS_API_PORT"])},
        "aggregator": {int(settings["TRACE_INSIGHTS_AGGREGATOR_PORT"])},
    }
    workloads = [d for d in documents if d["kind"] in ("Deployment", "Job")]
    for workload in workloads:
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert "limits" in container["resources"]
            if workload["kind"] == "Deployment":
                assert container["livenessProbe"]["httpGet"]["path"] == "/health"
                assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
                exposed = {p["containerPort"] for p in container["ports"]}
                assert exposed == ports[component], component
    hooks = [d for d in documents if d["kind"] == "Job"]
    assert len(hooks) == 1 and hooks[0]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate"
    ]


def test_values_follow_the_operators_intent():
    documents = _render(VALUE_SETS["HPA off, existing secret"])
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    assert ("HorizontalPodAutoscaler", "ti-trace-insights-collector") not in by_name
    assert by_name[("Deployment", "ti-trace-insights-collector")]["spec"]["replicas"] == 3
    assert not [d for d in documents if d["kind"] == "Secret"], "the existing secret is used"
    aggregator = by_name[("Deployment", "ti-trace-insights-aggregator")]
    env = {e["name"]: e for e in aggregator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRACE_INSIGHTS_CONSUMER_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    assert env["TRACE_INSIGHTS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == (
        "insights-credentials"
    )
    migrate = next(d for d in _render(EXTERNAL) if d["kind"] == "Job")
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    dev = _render(VALUE_SETS["dev trial"])
    statefulsets = {d["metadata"]["name"]: d for d in dev if d["kind"] == "StatefulSet"}
    assert set(statefulsets) == {f"ti-trace-insights-{n}" for n in ("kafka", "redis", "postgres")}
    ready = {"kafka": "kafka-broker-api-versions.sh", "redis": "ping", "postgres": "pg_isready"}
    for name, statefulset in statefulsets.items():
        [container] = statefulset["spec"]["template"]["spec"]["containers"]
        assert ready[container["name"]] in " ".join(container["readinessProbe"]["exec"]["command"])
        assert container["livenessProbe"]["tcpSocket"]["port"] == "tcp", name
    ingress = next(
        d
        for d in _render(VALUE_SETS["ingress, monitoring, network policy"])
        if d["kind"] == "Ingress"
    )
    paths = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }  # the dashboard (/, /ui) and the JSON API (/api) are the API's; OTLP the collector's
    assert paths == {"/": "ti-trace-insights-api", "/v1/traces": "ti-trace-insights-collector"}


@pytest.mark.parametrize(
    ("values", "mention"),
    [
        ({**EXTERNAL, "aggregator": {"replicas": 0}}, "replicas"),
        ({**EXTERNAL, "image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({**EXTERNAL, "api": {"port": 70000}}, "port"),
        ({**EXTERNAL, "colector": {"replicas": 2}}, "colector"),
        ({**EXTERNAL, "redis": {"url": "localhost:6379"}}, "url"),
        ({**EXTERNAL, "kafka": {"bootstrapServers": "no port"}}, "bootstrapServers"),
        ({**EXTERNAL, "aggregator": {"replicas": 13}}, "must not exceed kafka.partitions"),
        ({"redis": EXTERNAL["redis"], "database": EXTERNAL["database"]}, "kafka.bootstrapServers"),
    ],
)
def test_bad_values_are_rejected_with_a_reason(values, mention):
    with pytest.raises(helm_python.HelmError) as refused:
        _render(values)
    assert mention in str(refused.value)


def test_the_schema_is_valid_json():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
