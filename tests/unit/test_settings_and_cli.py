import pytest
from typer.testing import CliRunner

from trace_insights.cli import app, load_settings
from trace_insights.core.settings import Settings


def test_environment_with_prefix_and_flags_on_top(monkeypatch):
    monkeypatch.setenv("TRACE_INSIGHTS_OTLP_HTTP_PORT", "5000")
    monkeypatch.setenv("TRACE_INSIGHTS_SPANS_TOPIC", "my.topic")
    assert Settings().otlp_http_port == 5000
    settings = load_settings(otlp_http_port=6000, otlp_grpc_port=None)
    assert settings.otlp_http_port == 6000
    assert settings.otlp_grpc_port == 4317
    assert settings.spans_topic == "my.topic"


def test_defaults_work():
    settings = Settings()
    assert (settings.otlp_http_port, settings.otlp_grpc_port, settings.api_port) == (
        4318,
        4317,
        8000,
    )
    assert settings.kafka_bootstrap_servers is None


def test_collector_without_kafka_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["collector", "--otlp-http-port", "70000"], "otlp_http_port"),
        (["collector", "--otlp-grpc-port", "x"], "valid integer"),
    ],
)
def test_bad_flags_get_a_clear_message(args, needle):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert needle in result.output


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("TRACE_INSIGHTS_KAFKA_COMPRESSION", "snappy")
    monkeypatch.setenv("TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["collector"])
    assert result.exit_code == 2
    assert "kafka_compression" in result.output
