"""Requests and responses of the MLflow-compatible endpoints (MLflow's field names)."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from trace_insights.api.schemas import MAX_EXPERIMENTS, ExperimentIds
from trace_insights.core import storable
from trace_insights.core.assessments import SOURCE_TYPES, check_json

FeedbackValue = bool | int | float | str


def rfc3339(epoch_ms: int) -> str:
    """protobuf's JSON form of a Timestamp, which MLflow's client parses."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(ms: int) -> str:
    """protobuf's JSON form of a Duration ("1.500s"), exact for whole milliseconds."""
    return f"{ms // 1000}.{ms % 1000:03d}s"


# epoch ms inside, MLflow's RFC 3339 string on the wire
Timestamp = Annotated[
    int,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# ms inside, protobuf's Duration string on the wire
Duration = Annotated[
    int,
    PlainSerializer(seconds, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+\\.[0-9]{3}s$"}),
]
Text = Annotated[str, AfterValidator(storable.text)]  # NUL and lone surrogates → U+FFFD


class CreateExperiment(BaseModel):
    name: Text = Field(min_length=1, max_length=256)


class CreateExperimentResponse(BaseModel):
    experiment_id: str


class ExperimentInfo(BaseModel):
    experiment_id: str
    name: str
    lifecycle_stage: Literal["active"] = "active"
    creation_time: int


class GetExperimentResponse(BaseModel):
    experiment: ExperimentInfo


class SearchExperiments(BaseModel):
    max_results: int = Field(1000, ge=1, le=50_000)
    page_token: str | None = None
    filter: str | None = Field(
        None, max_length=4_000, description="MLflow's: name, creation_time, ... joined by AND"
    )
    order_by: list[str] = Field(default_factory=list, description="One of name, creation_time…")
    view_type: str | None = Field(None, description="Accepted; every experiment here is active")


class SearchExperimentsResponse(BaseModel):
    experiments: list[ExperimentInfo]
    next_page_token: str | None = None


class Source(BaseModel):
    source_type: str = "HUMAN"
    source_id: Text | None = Field(None, max_length=256)

    @field_validator("source_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SOURCE_TYPES:
            raise ValueError(f"must be one of {', '.join(SOURCE_TYPES)}")
        return value


class Feedback(BaseModel):
    value: FeedbackValue

    @field_validator("value", mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        if not isinstance(value, bool | int | float | str):
            raise ValueError("must be a boolean, a number or a string")
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return storable.text(value) if isinstance(value, str) else value


class SerializedValue(BaseModel):
    serialization_format: Literal["JSON_FORMAT"]
    value: str = Field(max_length=1_000_000)


class Expectation(BaseModel):
    """MLflow's: the value as protobuf's Value (any JSON), or serialized as JSON text."""

    value: Any = None
    serialized_value: SerializedValue | None = None

    @model_validator(mode="after")
    def _one(self) -> "Expectation":
        if self.serialized_value is not None:
            if "value" in self.model_fields_set:
                raise ValueError("give value or serialized_value, not both")
            try:
                self.value = json.loads(self.serialized_value.value)
            except ValueError:
                raise ValueError("serialized_value.value is not JSON") from None
            self.serialized_value = None
        elif "value" not in self.model_fields_set:
            raise ValueError("give value or serialized_value")
        check_json(self.value)
        self.value = storable.deep(self.value)
        return self


Metadata = dict[Annotated[Text, Field(max_length=250)], Annotated[Text, Field(max_length=10_000)]]


class NewAssessment(BaseModel):
    """MLflow's Assessment as its client creates one: feedback or an expectation."""

    assessment_name: Text = Field(min_length=1, max_length=250)
    source: Source = Field(default_factory=Source)
    feedback: Feedback | None = None
    expectation: Expectation | None = None
    rationale: Text | None = Field(None, max_length=10_000)
    metadata: Metadata = Field(default_factory=dict, max_length=100)
    overrides: str | None = Field(
        None, max_length=64, description="The feedback this one replaces; it becomes not valid"
    )

    @field_validator("assessment_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if "=" in value:
            raise ValueError("must not contain '=' (it separates a dimension from its value)")
        return value

    @model_validator(mode="after")
    def _kind(self) -> "NewAssessment":
        if (self.feedback is None) == (self.expectation is None):
            raise ValueError("give exactly one of feedback and expectation")
        if self.overrides is not None and self.feedback is None:
            raise ValueError("only feedback overrides another assessment")
        return self


class CreateAssessment(BaseModel):
    assessment: NewAssessment


class AssessmentChange(BaseModel):
    """The fields given change; the others stay (MLflow's ``update_mask`` names the same)."""

    assessment_name: Text | None = Field(None, min_length=1, max_length=250)
    feedback: Feedback | None = None
    expectation: Expectation | None = None
    rationale: Text | None = Field(None, max_length=10_000)
    metadata: Metadata | None = Field(None, max_length=100)


class UpdateAssessment(BaseModel):
    assessment: AssessmentChange
    update_mask: Any = Field(None, description="Accepted; the fields present are changed")


class AssessmentOut(BaseModel):
    assessment_id: str
    trace_id: str = Field(description="tr-<32 hex>")
    assessment_name: str
    source: Source
    feedback: Feedback | None = None
    expectation: Expectation | None = None
    rationale: str | None
    metadata: dict[str, str]
    overrides: str | None = None
    valid: bool
    create_time: Timestamp
    last_update_time: Timestamp


class AssessmentResponse(BaseModel):
    assessment: AssessmentOut


class Deleted(BaseModel):
    pass


SPANS_LOCATION = "mlflow.trace.spansLocation"  # MLflow's tag: where a trace's spans are


class ExperimentLocation(BaseModel):
    experiment_id: str = Field(min_length=1, max_length=64)


class TraceLocation(BaseModel):
    """MLflow's TraceLocation; an experiment is the only location here."""

    type: Literal["MLFLOW_EXPERIMENT"] = "MLFLOW_EXPERIMENT"
    mlflow_experiment: ExperimentLocation


class SentTraceInfo(BaseModel):
    """MLflow's TraceInfo (v3) as its client sends it when a trace ends; the fields read here
    are checked, the others are answered back as they came."""

    model_config = ConfigDict(extra="allow")

    trace_id: str = Field(min_length=1, max_length=64)
    trace_location: TraceLocation
    tags: dict[Text, Text] = Field(default_factory=dict, max_length=1_000)
    trace_metadata: dict[Text, Text] = Field(default_factory=dict, max_length=1_000)
    assessments: list[NewAssessment] = Field(default_factory=list, max_length=1_000)


class StartTraceBody(BaseModel):
    trace_info: SentTraceInfo


class StartTrace(BaseModel):
    trace: StartTraceBody


class StartedTraceInfo(BaseModel):
    trace_info: dict[str, Any]


class StartedTrace(BaseModel):
    trace: StartedTraceInfo


class SetTraceTag(BaseModel):
    key: Text = Field(min_length=1, max_length=250)
    value: Text = Field(max_length=8_000)


class DeleteTraceTag(BaseModel):
    key: Text = Field(min_length=1, max_length=250)


class SpanOut(BaseModel):
    span_id: str
    parent_span_id: str | None
    name: str
    span_type: str
    status: str
    status_message: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    tool_name: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    attributes: dict[str, Any]
    events: list[str] = Field(description="The span's event names, in order")
    usage: dict[str, int] = Field(
        description="Cache and reasoning tokens it reported, by genai-prices' usage names "
        "(cache_read_tokens, cache_write_tokens, output_reasoning_tokens)"
    )
    provider: str | None
    cost: str | None = Field(description="US dollars, an exact decimal string; null: unpriced")
    priced_by: str | None = Field(
        description="What decided the cost: reported, override <id>, or "
        "genai-prices <provider>/<model>"
    )


class TraceInfo(BaseModel):
    """MLflow's TraceInfoV3. The root span's name is the ``mlflow.traceName`` tag and the
    token usage the ``mlflow.trace.tokenUsage`` metadata, as MLflow writes them."""

    trace_id: str = Field(description="tr-<32 hex>")
    trace_location: TraceLocation
    request_time: Timestamp = Field(description="first span start")
    execution_duration: Duration
    state: Literal["OK", "ERROR", "IN_PROGRESS"]
    trace_metadata: dict[str, str]
    tags: dict[str, str]
    assessments: list[AssessmentOut]


class TraceData(BaseModel):
    spans: list[SpanOut]


class TraceOut(BaseModel):
    """MLflow's GetTraceInfoV3 reply (``trace_info``), with ``data``: the spans as this
    pipeline normalized them (types, tools, models, tokens), which the dashboard reads."""

    trace_info: TraceInfo
    data: TraceData


class GetTraceResponse(BaseModel):
    trace: TraceOut


OtlpSpanJson = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "description": "An OTLP Span, protobuf JSON"}),
]


class FullTrace(BaseModel):
    """MLflow's Trace message: the info and the spans as OTLP."""

    trace_info: TraceInfo
    spans: list[OtlpSpanJson]


class GetFullTraceResponse(BaseModel):
    trace: FullTrace


class BatchGetTracesResponse(BaseModel):
    traces: list[FullTrace]


class BatchGetTraceInfos(BaseModel):
    trace_ids: list[str] = Field(min_length=1, max_length=1_000)
    experiment_ids: list[str] | None = None


class BatchGetTraceInfosResponse(BaseModel):
    trace_infos: list[TraceInfo]


class FilterCorrelationRequest(BaseModel):
    experiment_ids: ExperimentIds
    filter_string1: str = Field(min_length=1)
    filter_string2: str = Field(min_length=1)
    base_filter: str | None = None
    start_time: int | None = Field(None, ge=0)
    end_time: int | None = Field(None, ge=0)


class FilterCorrelationV2(BaseModel):
    """The seed's names (``/api/2.0``); NaN is omitted."""

    npmi: float | None = None
    npmi_smoothed: float | None = None
    filter_string1_count: int
    filter_string2_count: int
    joint_count: int
    total_count: int


class FilterCorrelationV3(BaseModel):
    """MLflow's names (``/api/3.0``); NaN is omitted."""

    npmi: float | None = None
    npmi_smoothed: float | None = None
    filter1_count: int
    filter2_count: int
    joint_count: int
    total_count: int


class SearchTraces(BaseModel):
    """Ours (``experiment_ids``) or MLflow 3's (``locations``) scope; one is required."""

    experiment_ids: ExperimentIds | None = None
    locations: list[TraceLocation] | None = Field(None, max_length=MAX_EXPERIMENTS)
    filter: str | None = Field(None, description="The filter language; all traces if empty")
    order_by: list[str] = Field(
        default_factory=lambda: ["timestamp_ms DESC"],
        description="One of timestamp_ms, execution_time_ms, status, name; ASC or DESC",
    )
    max_results: int = Field(100, ge=1, le=10_000)
    page_token: str | None = None
    start_time: int | None = Field(None, ge=0, description="Traces starting at or after (ms)")
    end_time: int | None = Field(None, ge=0, description="Traces starting before (ms)")

    @model_validator(mode="after")
    def _scoped(self) -> "SearchTraces":
        if self.experiment_ids is None:
            if not self.locations:
                raise ValueError("give experiment_ids or locations (the experiments to search)")
            found = [location.mlflow_experiment.experiment_id for location in self.locations]
            self.experiment_ids = list(dict.fromkeys(found))
        return self

    @property
    def scope(self) -> list[str]:
        assert self.experiment_ids is not None, "set by the validator"
        return self.experiment_ids


class SearchTracesResponse(BaseModel):
    traces: list[TraceInfo]
    next_page_token: str | None = None
