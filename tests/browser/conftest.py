"""A real headless Chromium (Debian's ``chromium``, driven by Playwright) against ``up``."""

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright


# Module scope: Playwright's sync API runs an event loop in this thread while it is open, and
# a later test's asyncio.run() would find it running.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/install-deps.sh installs it"
    browser = playwright.chromium.launch(executable_path=chromium)
    yield browser
    browser.close()


class Console:
    """The page's console errors and uncaught exceptions, kept for the test to assert on."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.console = Console(page)  # type: ignore[attr-defined]
    yield page
    context.close()
