"""Requests and responses of the insights API (MLflow's Insights REST outline)."""

import json
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from trace_insights.core import storable
from trace_insights.core.periods import zone_of
from trace_insights.core.prices import PriceKey

TimeBucket = Literal["minute", "hour", "day", "week"]
MAX_EXPERIMENTS = 100  # in one request
ExperimentIds = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
    Field(
        min_length=1,
        max_length=MAX_EXPERIMENTS,
        description=f"1 to {MAX_EXPERIMENTS} experiment ids",
    ),
]


class InsightsRequest(BaseModel):
    experiment_ids: ExperimentIds
    start_time: int | None = Field(None, ge=0, description="Epoch ms; default end_time - 7 days")
    end_time: int | None = Field(None, ge=0, description="Epoch ms, exclusive; default now")
    time_bucket: TimeBucket = "hour"
    timezone: str = Field("UTC", description="IANA zone for hour, day and week buckets")

    @field_validator("experiment_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @model_validator(mode="after")
    def _range(self) -> "InsightsRequest":
        if (
            self.start_time is not None
            and self.end_time is not None
            and self.end_time <= self.start_time
        ):
            raise ValueError("end_time must be after start_time")
        return self


class AssessmentMetricsRequest(InsightsRequest):
    assessment_name: str = Field(min_length=1)


class ToolMetricsRequest(InsightsRequest):
    tool_name: str = Field(min_length=1)


class TagMetricsRequest(InsightsRequest):
    tag_key: str = Field(min_length=1)
    limit: int | None = Field(None, ge=1, description="Most frequent values to return; all")


class DimensionValue(BaseModel):
    name: str = Field(min_length=1)
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("parameters", mode="before")
    @classmethod
    def _strings(cls, value: object) -> object:
        """Parameters are strings (the outline's contract); numbers and booleans are accepted
        as their JSON text, so ``"threshold": 1000`` works too."""
        if isinstance(value, dict):
            return {
                k: json.dumps(v) if isinstance(v, bool | int | float) else v
                for k, v in value.items()
            }
        return value


class NpmiRequest(InsightsRequest):
    dimension1: DimensionValue
    dimension2: DimensionValue


class CorrelationsRequest(InsightsRequest):
    dimension: DimensionValue | None = Field(None, description="The slice, as a dimension")
    filter_string: str | None = Field(None, description="Or the slice as a filter string")
    limit: int = Field(5, ge=1, le=1000)
    min_support: int = Field(5, ge=1, description="Fewest traces in common for a partner")

    @model_validator(mode="after")
    def _one_slice(self) -> "CorrelationsRequest":
        if (self.dimension is None) == (not self.filter_string):
            raise ValueError("give the slice as exactly one of dimension or filter_string")
        return self


# responses


class Overflow(BaseModel):
    """Values counted together as ``__other__``: a tag key's past the per-key cap, or (with
    ``tag_key`` null) tool names past the experiment's cap."""

    tag_key: str | None = Field(description="The tag key; null for tool names")
    other_count: int = Field(description="Traces with a value (a tool) past the cap")


class Meta(BaseModel):
    source: Literal["stream", "store"]
    watermark: int | None = Field(description="Latest event time (trace start, ms) applied")
    consumer_lag: int | None = Field(description="Records not yet applied, all partitions")
    lag_reported_at: int | None = Field(description="When the lag was last reported (ms)")
    edges: Literal["minute", "hour", "day"] = Field(
        description="Grid the range and bucket edges were aligned to (stored resolutions)"
    )
    start_time: int
    end_time: int
    cardinality_overflow: list[Overflow] = Field(default_factory=list)
    incomplete: list[str] = Field(
        default_factory=list,
        description="Experiments whose aggregates were not whole while this was read (the "
        "aggregate store lost them; they are being rebuilt from the source of truth): their "
        "figures may be short until this is empty",
    )


class VolumeCounts(BaseModel):
    count: int
    ok_count: int
    error_count: int


class VolumePoint(VolumeCounts):
    time_bucket: int


class VolumeResponse(BaseModel):
    summary: VolumeCounts
    time_series: list[VolumePoint]
    meta: Meta


class LatencyStats(BaseModel):
    p50_latency: float | None
    p90_latency: float | None
    p99_latency: float | None
    avg_latency: float | None
    min_latency: float | None
    max_latency: float | None


class LatencyPoint(LatencyStats):
    time_bucket: int


class LatencyResponse(BaseModel):
    summary: LatencyStats
    time_series: list[LatencyPoint]
    meta: Meta


class ErrorStats(BaseModel):
    total_count: int
    error_count: int
    error_rate: float = Field(description="Percent")


class ErrorPoint(ErrorStats):
    time_bucket: int


class ErrorsResponse(BaseModel):
    summary: ErrorStats
    time_series: list[ErrorPoint]
    meta: Meta


class TokenCounts(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class TokenPoint(TokenCounts):
    time_bucket: int


class UnpricedModel(BaseModel):
    model: str
    call_count: int = Field(description="Calls with tokens that no price was found for")


class CostMeta(Meta):
    currency: Literal["USD"] = "USD"
    unpriced_models: list[UnpricedModel] = Field(
        default_factory=list,
        description="Models called with tokens in the range that no price was found for: "
        "their calls are counted, their cost is in no figure (never read it as $0)",
    )


USD = Field(
    description="US dollars, an exact decimal string (sums are exact); null where every call "
    "with tokens was unpriced (see unpriced_calls), never a silent 0"
)


class CostFigures(BaseModel):
    cost: str | None = USD
    unpriced_calls: int


class CostPoint(CostFigures):
    time_bucket: int


class ModelCost(CostFigures, TokenCounts):
    model: str
    call_count: int


class ProviderCost(CostFigures):
    provider: str | None = Field(description="As the spans report it; null where they do not")
    call_count: int


class CostResponse(BaseModel):
    summary: CostFigures
    time_series: list[CostPoint]
    models: list[ModelCost]
    providers: list[ProviderCost]
    meta: CostMeta


class TokensResponse(BaseModel):
    summary: TokenCounts
    time_series: list[TokenPoint]
    models: list[ModelCost]
    meta: CostMeta


AssessmentType = Literal["pass-fail", "boolean", "numeric", "string"]


class AssessmentInfo(BaseModel):
    assessment_name: str
    assessment_type: AssessmentType
    sources: list[str]
    trace_count: int


class AssessmentDiscoveryResponse(BaseModel):
    data: list[AssessmentInfo]
    meta: Meta


class FailureStats(BaseModel):
    total_count: int
    failure_count: int
    failure_rate: float = Field(description="Percent")


class NumericStats(BaseModel):
    total_count: int
    p50_value: float | None
    p90_value: float | None
    p99_value: float | None
    avg_value: float | None
    min_value: float | None
    max_value: float | None


class ValueCount(BaseModel):
    value: str
    count: int
    percentage: float


class StringStats(BaseModel):
    total_count: int
    unique_values: int
    top_values: list[ValueCount]


class FailurePoint(FailureStats):
    time_bucket: int


class NumericPoint(NumericStats):
    time_bucket: int


class StringPoint(StringStats):
    time_bucket: int


class AssessmentMetricsResponse(BaseModel):
    assessment_name: str
    assessment_type: AssessmentType
    summary: FailureStats | NumericStats | StringStats
    time_series: list[FailurePoint] | list[NumericPoint] | list[StringPoint]
    meta: Meta


class ToolStats(BaseModel):
    tool_name: str
    trace_count: int
    invocation_count: int
    error_count: int
    error_rate: float = Field(description="Percent of invocations")
    avg_latency: float | None
    p50_latency: float | None
    p90_latency: float | None
    p99_latency: float | None


class ToolsSummary(BaseModel):
    tool_count: int = Field(description="Distinct tools called")
    invocation_count: int
    trace_count: int = Field(description="Traces that called any tool")


class ToolDiscoveryResponse(BaseModel):
    summary: ToolsSummary
    data: list[ToolStats]
    meta: Meta


class ToolPoint(BaseModel):
    time_bucket: int
    count: int = Field(description="Invocations")
    trace_count: int = Field(description="Traces that called the tool")
    error_count: int
    p50_latency: float | None
    p90_latency: float | None
    p99_latency: float | None


class ToolMetricsResponse(BaseModel):
    summary: ToolStats
    time_series: list[ToolPoint]
    meta: Meta


class TagInfo(BaseModel):
    tag_key: str
    trace_count: int
    unique_values: int = Field(description="Distinct values (HyperLogLog estimate on Redis)")


class TagDiscoveryResponse(BaseModel):
    data: list[TagInfo]
    meta: Meta


class TagValueCount(ValueCount):
    cost: str | None = USD
    unpriced_calls: int


class TagMetricsResponse(BaseModel):
    summary: TagInfo
    data: list[TagValueCount]
    meta: CostMeta


class DimensionParameter(BaseModel):
    name: str
    type: Literal["string", "number", "enum"]
    required: bool = True
    description: str | None = None
    enum_values: list[str] | None = None


class Dimension(BaseModel):
    name: str
    display_name: str
    description: str
    parameters: list[DimensionParameter]


class DimensionsDiscoveryResponse(BaseModel):
    data: list[Dimension]
    meta: Meta


FILTER_TEXT = "The same set of traces in the filter language (null if it cannot be spelt)"


class DimensionCount(BaseModel):
    name: str
    value: str
    count: int
    filter_string: str | None = Field(None, description=FILTER_TEXT)


class IntersectionCount(BaseModel):
    count: int


class CorrelationScore(BaseModel):
    npmi_score: float | None = Field(description="null when undefined (NaN)")
    npmi_smoothed: float | None
    strength: str


class NpmiResponse(BaseModel):
    dimension1: DimensionCount
    dimension2: DimensionCount
    intersection: IntersectionCount
    total_count: int
    correlation: CorrelationScore
    meta: Meta


class Correlation(BaseModel):
    dimension: str
    value: str
    parameters: dict[str, str] = Field(description="Ask for this partner as a dimension")
    filter_string: str | None = Field(description=FILTER_TEXT)
    npmi_score: float | None
    npmi_smoothed: float | None
    trace_count: int = Field(description="Traces in the slice that have this value")
    count: int = Field(description="Traces that have this value, in the slice or not")
    percentage_of_slice: float
    percentage_of_total: float
    strength: str


class CorrelationsResponse(BaseModel):
    dimension: DimensionCount
    total_count: int
    data: list[Correlation]
    meta: Meta


MAX_TIME_MS = storable.MAX_TIME_NS // 1_000_000
OverrideId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Price = Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=18)]


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_pattern: str = Field(
        min_length=1,
        max_length=250,
        description="The model names it prices: a case-insensitive glob (ft:gpt-4o:acme:*)",
    )
    provider: str | None = Field(
        None, max_length=64, description="Only calls reporting this provider (any if null)"
    )
    prices: dict[PriceKey, Price] = Field(
        min_length=1,
        description="USD per million tokens of each usage type (per thousand requests for "
        "requests_kcount), genai-prices' names; a usage type left out is free",
    )
    valid_from_ms: int = Field(
        0, ge=0, le=MAX_TIME_MS, description="Prices calls starting at or after this (epoch ms)"
    )


class PriceOut(BaseModel):
    override_id: int
    model_pattern: str
    provider: str | None
    prices: dict[str, str]
    valid_from_ms: int
    created_ms: int


class PricesOut(BaseModel):
    overrides: list[PriceOut]


TokenCount = Annotated[int, Field(ge=0, le=storable.MAX_TOKENS)]
UsageDetail = Literal["cache_read_tokens", "cache_write_tokens", "output_reasoning_tokens"]


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=1000)
    provider: str | None = Field(None, max_length=64)
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    usage: dict[UsageDetail, TokenCount] = Field(default_factory=dict)
    time_ms: int | None = Field(
        None, ge=0, le=MAX_TIME_MS, description="When the call starts, epoch ms (default: now)"
    )


class Quote(BaseModel):
    cost: str | None = Field(description="US dollars, exact; null: no price for this model")
    currency: Literal["USD"]
    priced_by: str | None = Field(
        description="reported, override <id>, or genai-prices <provider>/<model>"
    )
