"""A Python client for the API, shaped as the seed's examples use MLflow's ``TracingClient``:

client = TracingClient(tracking_uri="http://127.0.0.1:8000")
result = client.calculate_trace_filter_correlation(
    experiment_ids=["1"], filter_string1="span.type = 'TOOL'",
    filter_string2="trace.status = 'ERROR'")
print(result.npmi, result.joint_count)
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


class TraceInsightsError(Exception):
    """The API refused the request; ``error_code`` and ``message`` are MLflow's."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{error_code} ({status}): {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


@dataclass(frozen=True)
class TraceFilterCorrelationResult:
    npmi: float  # NaN when undefined
    npmi_smoothed: float
    filter_string1_count: int
    filter_string2_count: int
    joint_count: int
    total_count: int


class TracingClient:
    def __init__(
        self,
        tracking_uri: str = "http://127.0.0.1:8000",
        token: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=tracking_uri.rstrip("/"), headers=headers, timeout=timeout_s
        )

    def calculate_trace_filter_correlation(
        self,
        experiment_ids: list[str],
        filter_string1: str,
        filter_string2: str,
        base_filter: str | None = None,
    ) -> TraceFilterCorrelationResult:
        body = self._post(
            "/api/2.0/mlflow/traces/calculate-filter-correlation",
            {
                "experiment_ids": experiment_ids,
                "filter_string1": filter_string1,
                "filter_string2": filter_string2,
                "base_filter": base_filter,
            },
        )
        return TraceFilterCorrelationResult(
            npmi=body.get("npmi", math.nan),
            npmi_smoothed=body.get("npmi_smoothed", math.nan),
            filter_string1_count=body["filter_string1_count"],
            filter_string2_count=body["filter_string2_count"],
            joint_count=body["joint_count"],
            total_count=body["total_count"],
        )

    def search_traces(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        max_results: int | None = None,
    ) -> list[dict[str, Any]]:
        """Trace infos matching the filter, following pages until ``max_results`` (all if
        None)."""
        out = []
        for info in self._pages(experiment_ids, filter_string, order_by):
            out.append(info)
            if max_results is not None and len(out) >= max_results:
                break
        return out

    def close(self) -> None:
        self._http.close()

    def _pages(
        self, experiment_ids: list[str], filter_string: str | None, order_by: list[str] | None
    ) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": experiment_ids,
                "filter": filter_string,
                "max_results": 1000,
                "page_token": token,
            }
            if order_by:
                body["order_by"] = order_by
            page = self._post("/api/3.0/mlflow/traces/search", body)
            yield from page["traces"]
            token = page.get("next_page_token")
            if not token:
                return

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        if response.status_code >= 400:
            try:
                error = response.json()
                raise TraceInsightsError(
                    response.status_code, error["error_code"], error["message"]
                )
            except (ValueError, KeyError):
                raise TraceInsightsError(response.status_code, "UNKNOWN", response.text) from None
        return response.json()
