"""The login page in a real headless Chromium (Debian's), against a real server process.

Chromium comes from ``MEDLABEL_TEST_CHROMIUM`` or ``chromium`` on the PATH; Playwright's
own browser download is not used. Without a browser these tests are skipped, unless
``MEDLABEL_TEST_REQUIRE_BROWSER=1``, which makes them fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COOKIE = "__Host-medlabel_session"
WAIT_MS = 30_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium_path() -> str:
    path = os.environ.get("MEDLABEL_TEST_CHROMIUM") or shutil.which("chromium")
    if path and Path(path).is_file():
        return path
    if os.environ.get("MEDLABEL_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium required (MEDLABEL_TEST_REQUIRE_BROWSER=1) but not found")
    pytest.skip("no Chromium: set MEDLABEL_TEST_CHROMIUM or install Debian's chromium")


class Page:
    """A fresh browser context and page that records console errors and CSP violations."""

    def __init__(self, browser, server: Server) -> None:  # type: ignore[no-untyped-def]
        self.server = server
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.console_errors: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def _on_console(self, message) -> None:  # type: ignore[no-untyped-def]
        if message.type == "error":
            self.console_errors.append((message.text, str(message.location.get("url", ""))))

    def csp_violations(self) -> list[str]:
        return [text for text, _ in self.console_errors if "Content Security Policy" in text]

    def unexpected_errors(self) -> list[tuple[str, str]]:
        """Console errors other than the API's expected 401s and the missing favicon."""

        def expected(text: str, url: str) -> bool:
            path = url.removeprefix(self.server.url)
            return (
                "status of 401" in text and path in ("/api/auth/session", "/api/auth/login")
            ) or ("status of 404" in text and path == "/favicon.ico")

        return [(t, u) for t, u in self.console_errors if not expected(t, u)]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, demo_server: Server) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    wrapped = Page(browser, demo_server)
    yield wrapped
    wrapped.close()


def _log_in(p: Page, password: str) -> None:
    p.page.locator("#username").fill(p.server.username)
    p.page.locator("#password").fill(password)
    p.page.get_by_role("button", name="Log in").click()


def test_log_in_reload_and_log_out(page: Page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    p = page.page
    response = p.goto(f"{page.server.url}/")
    assert response is not None and response.status == 200
    expect(p.locator("#login-view")).to_be_visible(timeout=WAIT_MS)
    expect(p.locator("#projects-view")).to_be_hidden()

    _log_in(page, page.server.password)
    row = p.locator("#projects tbody tr[data-slug='demo']")
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row.locator("td")).to_have_text(
        ["Demo: chest CT, X-ray, fundus and slides", "demo", "admin"]
    )
    expect(p.locator("#login-view")).to_be_hidden()
    expect(p.locator("#whoami-name")).to_have_text("Demo admin")
    expect(p.locator("#projects-empty")).to_be_hidden()

    cookies = {c["name"]: c for c in page.context.cookies()}
    assert set(cookies) == {COOKIE}, cookies
    assert cookies[COOKIE]["secure"] is True
    assert cookies[COOKIE]["httpOnly"] is True
    assert cookies[COOKIE]["sameSite"] == "Strict"
    # HttpOnly: page script cannot read the session cookie.
    assert COOKIE not in p.evaluate("document.cookie")

    shot = tmp_path / "projects.png"
    p.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert len(data) > len(PNG_MAGIC) and data.startswith(PNG_MAGIC)

    # The session survives a reload: the page asks /api/auth/session and shows the projects.
    p.reload()
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(p.locator("#login-view")).to_be_hidden()

    p.get_by_role("button", name="Log out").click()
    expect(p.locator("#login-view")).to_be_visible(timeout=WAIT_MS)
    expect(p.locator("#projects-view")).to_be_hidden()
    expect(p.locator("#whoami")).to_be_hidden()
    # The session is gone on the server too, not just hidden.
    p.reload()
    expect(p.locator("#login-view")).to_be_visible(timeout=WAIT_MS)
    expect(p.locator("#projects-view")).to_be_hidden()
    assert COOKIE not in {c["name"] for c in page.context.cookies()}

    assert page.page_errors == []
    assert page.unexpected_errors() == []


def test_wrong_password_shows_an_error(page: Page) -> None:
    from playwright.sync_api import expect

    p = page.page
    p.goto(f"{page.server.url}/")
    expect(p.locator("#login-view")).to_be_visible(timeout=WAIT_MS)
    _log_in(page, page.server.password + "-wrong")
    expect(p.locator("#login-error")).to_have_text("Invalid username or password.", timeout=WAIT_MS)
    expect(p.locator("#login-view")).to_be_visible()
    expect(p.locator("#projects-view")).to_be_hidden()
    expect(p.locator("#projects tbody tr")).to_have_count(0)
    expect(p.locator("#password")).to_have_value("")
    assert page.context.cookies() == []
    assert page.page_errors == []
    assert page.unexpected_errors() == []


def test_docs_page_is_not_blocked_by_the_csp(page: Page) -> None:
    """/docs loads; its inline script and the Swagger UI assets are allowed by the CSP.

    There is no internet here, so the CDN is answered by a stub that does what Swagger UI
    needs the CSP to allow: run from cdn.jsdelivr.net and fetch the OpenAPI document.
    """
    from playwright.sync_api import expect

    stub = """
        window.SwaggerUIBundle = function (config) {
          fetch(config.url).then((r) => r.json()).then((spec) => {
            document.querySelector(config.dom_id).textContent = "stub:" + spec.info.title;
          });
        };
        SwaggerUIBundle.presets = { apis: {} };
        SwaggerUIBundle.SwaggerUIStandalonePreset = {};
    """
    p = page.page
    p.route(
        "https://cdn.jsdelivr.net/**",
        lambda route: route.fulfill(
            status=200,
            content_type="text/css" if route.request.url.endswith(".css") else "text/javascript",
            body="" if route.request.url.endswith(".css") else stub,
        ),
    )
    p.route("https://fastapi.tiangolo.com/**", lambda route: route.abort())
    response = p.goto(f"{page.server.url}/docs")
    assert response is not None and response.status == 200
    expect(p.locator("#swagger-ui")).to_have_text("stub:medlabel", timeout=WAIT_MS)
    assert page.page_errors == []
    assert page.csp_violations() == []
