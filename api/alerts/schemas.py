"""Alert rules as the API takes and returns them."""

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from trace_insights.api.alerts.targets import check_url
from trace_insights.api.schemas import DimensionValue, ExperimentIds

Metric = Literal[
    "error_rate",
    "trace_count",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "tool_error_rate",
    "token_count",
    "assessment_failure_rate",
    "npmi",
    "cost",
]
Comparator = Literal[">", ">=", "<", "<="]
NEEDS = {"tool_error_rate": "tool_name", "assessment_failure_rate": "assessment_name"}


class RuleParameters(BaseModel):
    tool_name: str | None = None
    assessment_name: str | None = None
    # cost: of one model, of one tag value, or (tag_key alone) of the costliest value
    model: str | None = None
    tag_key: str | None = None
    tag_value: str | None = None
    dimension1: DimensionValue | None = None
    dimension2: DimensionValue | None = None


class RuleChange(BaseModel):
    """What PATCH may change."""

    name: str | None = Field(None, min_length=1, max_length=250)
    comparator: Comparator | None = None
    threshold: float | None = None
    window_s: int | None = Field(None, ge=60)
    min_traces: int | None = Field(None, ge=0)
    webhooks: list[str] | None = Field(None, min_length=1)
    cooldown_s: int | None = Field(None, ge=0)
    slack: bool | None = None

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            check_url(url, allow_private=True)  # the form here; the address in routes
        return value


class RuleIn(RuleChange):
    name: str = Field(min_length=1, max_length=250)
    experiment_ids: ExperimentIds
    metric: Metric
    parameters: RuleParameters = Field(default_factory=RuleParameters)
    window_s: int = Field(300, ge=60, description="The window ending now, in seconds")
    comparator: Comparator = ">"
    threshold: float
    min_traces: int = Field(1, ge=0, description="Fewer traces in the window: no decision")
    baseline: Literal["day", "week"] | None = Field(
        None,
        description="Compare with the same window a day or a week earlier: the rule's "
        "value is the absolute change",
    )
    webhooks: list[str] = Field(min_length=1)
    secret: str | None = Field(None, min_length=16, max_length=128)
    cooldown_s: int = Field(300, ge=0, description="No new notification sooner than this")
    slack: bool = Field(False, description="Post a Slack-compatible payload ({text, ...})")

    @model_validator(mode="after")
    def _parameters(self) -> "RuleIn":
        needed = NEEDS.get(self.metric)
        if needed and not getattr(self.parameters, needed):
            raise ValueError(f"metric {self.metric} needs parameters.{needed}")
        if self.metric == "npmi" and (
            self.parameters.dimension1 is None or self.parameters.dimension2 is None
        ):
            raise ValueError("metric npmi needs parameters.dimension1 and parameters.dimension2")
        if self.metric == "npmi" and self.window_s < 3600:
            raise ValueError("npmi is counted per hour: window_s must be at least 3600")
        if self.metric == "cost" and self.parameters.model and self.parameters.tag_key:
            raise ValueError("metric cost takes parameters.model or parameters.tag_key, not both")
        if self.parameters.tag_value is not None and not self.parameters.tag_key:
            raise ValueError("parameters.tag_value needs parameters.tag_key")
        return self


class RuleOut(BaseModel):
    rule_id: str
    name: str
    experiment_ids: list[str]
    metric: Metric
    parameters: RuleParameters
    window_s: int
    comparator: Comparator
    threshold: float
    min_traces: int
    baseline: Literal["day", "week"] | None
    webhooks: list[str]
    cooldown_s: int
    slack: bool
    state: Literal["ok", "firing"]
    state_since: int
    last_value: float | None
    last_evaluated: int | None
    created: int


class CreatedRule(RuleOut):
    secret: str = Field(description="Signs the webhooks (X-Signature); shown only here")


class RulesOut(BaseModel):
    rules: list[RuleOut]


class DeliveryOut(BaseModel):
    delivery_id: str
    event: Literal["firing", "resolved"]
    target: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created: int
    delivered: int | None
    response_status: int | None
    last_error: str | None
    payload: dict


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
