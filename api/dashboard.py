"""The dashboard: one page at ``/`` and its assets under ``/ui``, shipped inside the package
(no build step, no CDN), so every API process serves it — ``up``, ``api``, the image, the chart.
The page holds no data: everything it shows comes from the JSON API, with the bearer token."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).with_name("static")
# The page may talk to this origin only; uPlot sizes its elements with inline styles.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class _Assets(StaticFiles):
    """Vendored files carry their version in the path, so they are cached for good; the
    dashboard's own files are revalidated (an ETag round trip) so an upgrade shows at once."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendored = Path(full_path).is_relative_to(STATIC / "vendor")
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if vendored else "no-cache"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    page = (STATIC / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    def dashboard() -> Response:
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": POLICY,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.mount("/ui", _Assets(directory=STATIC), name="ui")
