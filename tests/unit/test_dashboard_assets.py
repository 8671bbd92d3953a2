"""How the dashboard is served: the page with its security headers, assets revalidated or
cached for good by their path, compressed, and a missing asset answered in the API's shape."""

import re

from tests.unit.conftest import embedded
from trace_insights.api.dashboard import STATIC


def test_the_page_names_only_assets_that_are_served_compressed_and_cached(tmp_path):
    with embedded(tmp_path) as api:
        page = api.client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "connect-src 'self'" in policy
        assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
        assert len(assets) >= 4
        for path in assets:
            reply = api.client.get(path, headers={"Accept-Encoding": "gzip"})
            assert reply.status_code == 200, path
            vendored = path.startswith("/ui/vendor/")
            cache = reply.headers["cache-control"]
            assert cache == ("public, max-age=31536000, immutable" if vendored else "no-cache")
            if int(reply.headers.get("content-length", 0)) > 2048 or len(reply.content) > 2048:
                assert reply.headers.get("content-encoding") == "gzip", path


def test_an_unchanged_asset_is_revalidated_with_a_304(tmp_path):
    with embedded(tmp_path) as api:
        first = api.client.get("/ui/js/app.js")
        again = api.client.get("/ui/js/app.js", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304


def test_a_missing_asset_is_a_404_in_the_apis_shape(tmp_path):
    with embedded(tmp_path) as api:
        reply = api.client.get("/ui/js/nothing-here.js")
        assert reply.status_code == 404
        assert set(reply.json()) == {"error_code", "message"}
        assert api.client.get("/ui/../pyproject.toml").status_code == 404


def test_every_module_the_page_imports_ships_in_the_package():
    """A module named in an import but missing from the package would fail only in a browser."""
    for module in (STATIC / "js").rglob("*.js"):
        for imported in re.findall(r'from "(\.{1,2}/[^"]+)"', module.read_text()):
            assert (module.parent / imported).resolve().is_file(), f"{module.name}: {imported}"


def test_the_page_preloads_every_module():
    """Each module named up front: the browser fetches them in parallel instead of discovering
    them import by import (three round trips deep)."""
    page = (STATIC / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/ui/js/([^"]+)">', page))
    assert preloaded == {str(m.relative_to(STATIC / "js")) for m in (STATIC / "js").rglob("*.js")}
