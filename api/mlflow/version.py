"""``GET /version``: the MLflow version whose client this API answers as a tracking server.
MLflow's client asks it before logging spans (it does so from 3.4 on, over OTLP at
``/v1/traces``); it is the client version the test suite runs."""

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

MLFLOW_VERSION = "3.17.2"

router = APIRouter()


@router.get("/version", response_class=PlainTextResponse, include_in_schema=False)
def version() -> str:
    return MLFLOW_VERSION
