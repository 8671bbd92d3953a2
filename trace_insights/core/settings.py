"""One settings object for every process, read from ``TRACE_INSIGHTS_*`` environment variables."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from trace_insights.core.buckets import Resolution

Port = Field(ge=0, le=65535)


class Settings(BaseSettings):
    """CLI flags override these; every field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TRACE_INSIGHTS_", extra="ignore")

    data_dir: Path = Path(".trace-insights")
    host: str = "127.0.0.1"
    otlp_http_port: int = Field(4318, ge=0, le=65535)
    otlp_grpc_port: int = Field(4317, ge=0, le=65535)
    api_port: int = Field(8000, ge=0, le=65535)
    aggregator_port: int = Field(9464, ge=0, le=65535)  # /health, /ready, /metrics

    kafka_bootstrap_servers: str | None = None
    redis_url: str | None = None
    database_url: str | None = None

    spans_topic: str = Field("trace-insights.spans", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    topic_partitions: int = Field(12, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    kafka_compression: Literal["lz4", "gzip", "none"] = "lz4"

    auth_token: SecretStr | None = None
    webhook_allow_private: bool = False  # alert webhooks to loopback/private/metadata addresses
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # an OTLP request, compressed
    max_api_body_bytes: int = Field(1024 * 1024, ge=1024)  # an API request
    max_decompressed_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_message_bytes: int = Field(900_000, ge=10_000)
    batch_linger_ms: float = Field(5.0, ge=0)
    producer_buffer_bytes: int = Field(128 * 1024 * 1024, ge=1024 * 1024)
    # below an OTel SDK's 10 s export timeout, so a slow Kafka is a 503 the SDK retries
    produce_timeout_s: float = Field(5.0, gt=0)
    retry_after_s: int = Field(2, ge=1)

    consumer_group: str = "trace-insights-aggregator"
    consumer_instance_id: str | None = None  # static membership: restarts skip a rebalance
    consumer_session_timeout_ms: int = Field(10_000, ge=1000)  # a crash's stall
    max_poll_records: int = Field(500, ge=1)
    trace_idle_timeout_s: float = Field(300.0, gt=0)
    ttl_minute_hours: float = Field(48.0, gt=0)
    ttl_hour_days: float = Field(90.0, gt=0)
    ttl_day_days: float = Field(730.0, gt=0)
    tag_value_cap: int = Field(100, ge=1)
    tool_name_cap: int = Field(200, ge=1)  # tool names counted by name per experiment
    digest_cache_entries: int = Field(10_000, ge=0)  # merged bucket digests an API keeps
    redis_cluster: bool = False
    migrate_on_start: bool = False

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_format: Literal["json", "console"] = "json"

    def database(self) -> str:
        """The configured database, else SQLite under the data directory (embedded mode)."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.data_dir / 'trace-insights.db').resolve()}"

    def retention_ms(self) -> dict[Resolution, int]:
        """How long the aggregates of each resolution are kept."""
        return {
            Resolution.MINUTE: int(self.ttl_minute_hours * 3_600_000),
            Resolution.HOUR: int(self.ttl_hour_days * 86_400_000),
            Resolution.DAY: int(self.ttl_day_days * 86_400_000),
        }

    def require_redis(self) -> str:
        if not self.redis_url:
            raise ValueError("TRACE_INSIGHTS_REDIS_URL (or --redis-url) is not set")
        return self.redis_url

    def require_kafka(self) -> str:
        """Kafka servers, or a clear error for processes that cannot run without them."""
        if not self.kafka_bootstrap_servers:
            raise ValueError(
                "TRACE_INSIGHTS_KAFKA_BOOTSTRAP_SERVERS (or --kafka-bootstrap-servers) is not set"
            )
        return self.kafka_bootstrap_servers
