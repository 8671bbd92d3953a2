"""Request bodies over ``TRACE_INSIGHTS_MAX_API_BODY_BYTES`` are refused with a 413 in MLflow's
error shape, before they are read whole: at once when Content-Length says so, else when the
bytes received pass the limit (a 256 MiB body once grew the API by 500 MB)."""

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trace_insights.api.errors import INVALID_PARAMETER_VALUE, body


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt  # paths whose app bounds its own bodies

    def message(self) -> str:
        limit = self.max_bytes
        return f"the request body is larger than {limit} bytes (TRACE_INSIGHTS_MAX_API_BODY_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(body(INVALID_PARAMETER_VALUE, self.message()), 413)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.message())  # answered by the app's handler
            return message

        await self.app(scope, counted, send)
