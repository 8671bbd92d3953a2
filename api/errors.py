"""Errors in MLflow's JSON shape, ``{"error_code", "message"}``, for every failure path."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from trace_insights.core.dimensions import DimensionError
from trace_insights.core.logs import Throttled
from trace_insights.outages import dependency_of, is_outage

log = logging.getLogger(__name__)
_throttled = Throttled(log)

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"  # no route: MLflow's client falls back on it
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
UNAUTHENTICATED = "UNAUTHENTICATED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
_BY_STATUS = {
    400: INVALID_PARAMETER_VALUE,
    401: UNAUTHENTICATED,
    404: ENDPOINT_NOT_FOUND,  # a missing resource is an ApiError; this is a missing route
    405: INVALID_PARAMETER_VALUE,
    503: TEMPORARILY_UNAVAILABLE,
}


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, INVALID_PARAMETER_VALUE, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, RESOURCE_DOES_NOT_EXIST, message)


def body(error_code: str, message: str) -> dict[str, str]:
    return {"error_code": error_code, "message": message}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.error_code, exc.message), status_code=exc.status)

    @app.exception_handler(DimensionError)
    async def _dimension(_: Request, exc: DimensionError) -> JSONResponse:
        return JSONResponse(body(INVALID_PARAMETER_VALUE, str(exc)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(body(INVALID_PARAMETER_VALUE, describe(exc.errors())), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _BY_STATUS.get(exc.status_code, INVALID_PARAMETER_VALUE)
        return JSONResponse(
            body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return failure(exc, request.app.state.context.settings.retry_after_s)


def failure(exc: Exception, retry_after_s: int) -> JSONResponse:
    """What no handler answered: an outage is a 503 naming the dependency, with Retry-After;
    anything else a 500. Logged once per kind a minute, with one traceback."""
    if is_outage(exc):
        dependency = dependency_of(exc)
        _throttled.log(
            logging.WARNING,
            f"outage:{dependency}",
            "dependency unavailable",
            {"dependency": dependency, "error": str(exc)[:300]},
        )
        return JSONResponse(
            body(TEMPORARILY_UNAVAILABLE, f"{dependency} is unavailable; try again shortly"),
            status_code=503,
            headers={"Retry-After": str(retry_after_s)},
        )
    _throttled.log(logging.ERROR, f"error:{type(exc).__name__}", "unexpected error", exc_info=exc)
    return JSONResponse(body(INTERNAL_ERROR, "internal error; see the API's log"), 500)


def describe(errors: object) -> str:
    """Pydantic's errors as one sentence per problem, each naming the field."""
    parts = []
    for error in errors:  # type: ignore[attr-defined]
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(location) or "request body"
        message = error.get("msg", "is invalid")
        if error.get("type") == "json_invalid":
            parts.append(
                f"the request body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
            )
        elif error.get("type") == "missing":
            parts.append(f"missing required field '{field}'")
        else:
            parts.append(f"invalid value for '{field}': {message}")
    return "; ".join(parts) or "invalid request"
