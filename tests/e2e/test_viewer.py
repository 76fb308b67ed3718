"""The annotation workspace (frontend/, React + Cornerstone3D) in a real headless Chromium
against a real server process: log in, open the project, open a real chest CT (pyradiomics
lung2, ingested through the upload API), and check the viewer draws it, scrolls with the
wheel and the keyboard, reads pixel values and changes the window by dragging.

The page exposes its viewer state read-only as ``window.__medlabel.viewer`` (see
frontend/src/testHook.ts). Also here, without a browser: the committed OpenAPI snapshot that
the front end's types are generated from must match the server, and the server's
single-page fallback must not swallow API or file paths.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from medlabel.web.app import FRONTEND_DIST
from tests.conftest import Api
from tests.e2e.conftest import Server
from tests.e2e.test_login_page import (
    COOKIE,
    WAIT_MS,
    Page,
)
from tests.web.annotation_support import CT_SLICES, ct_files, make_zip

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_SNAPSHOT = ROOT / "frontend" / "src" / "api" / "openapi.json"
REQUIRE_FRONTEND = os.environ.get("MEDLABEL_TEST_REQUIRE_FRONTEND") == "1"
INGEST_TIMEOUT_S = 120.0


def _dump_openapi_module() -> Any:
    script = ROOT / "scripts" / "dump_openapi.py"
    spec = importlib.util.spec_from_file_location("dump_openapi", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_openapi_snapshot_is_current() -> None:
    """frontend/src/api/openapi.json (and schema.d.ts generated from it) follow the server.
    Fix: `make openapi` (see docs/frontend.md)."""
    current = _dump_openapi_module().render()
    committed = OPENAPI_SNAPSHOT.read_text(encoding="utf-8")
    if current != committed:
        now, then = json.loads(current), json.loads(committed)
        changed = sorted(set(now["paths"]) ^ set(then["paths"])) or "(paths equal: schemas differ)"
        pytest.fail(
            f"frontend/src/api/openapi.json is stale; run `make openapi`. Changed: {changed}"
        )


def _require_built_frontend() -> None:
    if not (FRONTEND_DIST / "index.html").is_file():
        message = "frontend/dist is not built: run scripts/build-frontend.sh"
        if REQUIRE_FRONTEND:
            pytest.fail(message)
        pytest.skip(message)


def test_client_routes_get_the_app_and_everything_else_a_404(app) -> None:  # type: ignore[no-untyped-def]
    _require_built_frontend()
    client = Api(app).client
    index = (FRONTEND_DIST / "index.html").read_text(encoding="utf-8")
    for path in ("/", "/projects/demo", "/items/7", "/items/7?project=demo"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text == index, path
        assert response.headers["cache-control"] == "no-cache"
        assert "script-src 'self'" in response.headers["content-security-policy"]
    asset = next((FRONTEND_DIST / "assets").glob("*.js"))
    served = client.get(f"/assets/{asset.name}")
    assert served.status_code == 200 and served.content == asset.read_bytes()
    for path in ("/api/nope", "/assets/nope.js", "/favicon.ico", "/static/nope.css", "/docs/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json", path
    assert client.post("/projects/demo").status_code == 404
    assert client.post("/api/nope").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/api/openapi.json").status_code == 200


# --- the browser ---------------------------------------------------------------------------


def _ingest_ct(server: Server, samples: Path) -> int:
    """Upload the CT series through the API as a zip; returns the item id once it is ready."""
    with httpx2.Client(base_url=server.url, timeout=httpx2.Timeout(60.0)) as client:
        login = client.post(
            "/api/auth/login", json={"username": server.username, "password": server.password}
        )
        assert login.status_code == 200, login.text
        # The cookie is Secure: a cookie jar would not send it over http, so set it by hand.
        headers = {
            "Cookie": f"{COOKIE}={login.cookies[COOKIE]}",
            "X-CSRF-Token": login.json()["csrf_token"],
        }
        client.cookies.clear()
        upload = client.post(
            "/api/projects/demo/ingest",
            content=make_zip(ct_files(samples)),
            headers={**headers, "Content-Type": "application/zip"},
        )
        assert upload.status_code == 202, upload.text
        deadline = time.monotonic() + INGEST_TIMEOUT_S
        while time.monotonic() < deadline:
            items = client.get("/api/projects/demo/items", headers=headers).json()["items"]
            volumes = [i for i in items if i["kind"] == "volume"]
            if volumes:
                return int(volumes[0]["id"])
            time.sleep(0.5)
    raise AssertionError(f"the CT was not ingested in {INGEST_TIMEOUT_S} s:\n{server.log()}")


@pytest.fixture(scope="module")
def ct_item(demo_server: Server, samples: Path) -> int:
    _require_built_frontend()
    return _ingest_ct(demo_server, samples)


@pytest.fixture
def page(browser, demo_server: Server) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    wrapped = Page(browser, demo_server)
    wrapped.page.set_viewport_size({"width": 1200, "height": 900})
    yield wrapped
    wrapped.close()


def _viewer(p: Any) -> dict[str, Any]:
    state = p.evaluate("window.__medlabel && window.__medlabel.viewer")
    assert isinstance(state, dict), state
    return state


def _wait_viewer(p: Any, condition: str) -> dict[str, Any]:
    """Wait until `condition` (JS over `v`, the viewer state) holds; returns the state."""
    p.wait_for_function(
        f"() => {{ const v = window.__medlabel && window.__medlabel.viewer; "
        f"return !!v && ({condition}); }}",
        timeout=WAIT_MS,
    )
    return _viewer(p)


def _bright_fraction(png: bytes) -> tuple[float, int]:
    """Share of pixels brighter than dark grey, and the number of distinct grey levels."""
    from PIL import Image

    grey = Image.open(io.BytesIO(png)).convert("L")
    histogram = grey.histogram()
    total = sum(histogram)
    return sum(histogram[40:]) / total, sum(1 for n in histogram if n)


def _raw_value(p: Any, item_id: int, ijk: tuple[int, int, int]) -> int:
    """The stored int16 value of a voxel, read through the API by the page itself."""
    i, j, k = ijk
    return int(
        p.evaluate(
            """async ([id, i, j, k]) => {
                const r = await fetch(`/api/items/${id}/frames/${k}/raw`);
                const columns = Number(r.headers.get('X-Shape').split(',')[2]);
                return new Int16Array(await r.arrayBuffer())[j * columns + i];
            }""",
            [item_id, i, j, k],
        )
    )


@pytest.mark.browser
def test_open_a_ct_scroll_probe_and_window(page: Page, ct_item: int, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    p = page.page
    p.goto(f"{page.server.url}/")
    p.locator("#username").fill(page.server.username)
    p.locator("#password").fill(page.server.password)
    p.get_by_role("button", name="Log in").click()

    p.locator("#projects tbody tr[data-slug='demo'] a").click()
    card = p.locator(f"#items li[data-item-id='{ct_item}']")
    expect(card).to_be_visible(timeout=WAIT_MS)
    thumbnail = card.locator("img")
    expect(thumbnail).to_have_js_property("complete", True, timeout=WAIT_MS)
    assert thumbnail.evaluate("img => img.naturalWidth") > 0
    card.locator("a").click()
    assert p.url == f"{page.server.url}/items/{ct_item}?project=demo"

    # The middle slice is drawn first, with the first header window (soft tissue, in HU).
    start = (CT_SLICES - 1) // 2
    state = _wait_viewer(p, "v.rendered && v.loadedCount === v.sliceCount")
    assert state["itemId"] == ct_item
    assert (state["sliceCount"], state["sliceIndex"]) == (CT_SLICES, start)
    assert state["window"] == {"center": 40, "width": 400}
    assert state["sliceOffsetMm"] == pytest.approx(start * 5.0)
    expect(p.locator("#slice-readout")).to_have_text(f"Slice {start + 1} / {CT_SLICES} · 25.0 mm")

    viewport = p.locator("#viewport")
    shot = viewport.screenshot(path=str(tmp_path / "viewer.png"))
    bright, levels = _bright_fraction(shot)
    assert bright > 0.15 and levels > 50, (bright, levels)  # a chest, not a blank canvas

    # The pixel under the cursor: the viewport centre is the image centre at zoom 1, and
    # the readout shows the value stored at that voxel.
    box = viewport.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    p.mouse.move(cx, cy)
    expect(p.locator("#probe-readout")).to_contain_text("HU", timeout=WAIT_MS)
    text = p.locator("#probe-readout").inner_text()
    index_text, value_text = text.removesuffix(" HU").split(" = ")
    i, j, k = (int(n) for n in index_text.strip("()").split(","))
    assert i in (255, 256) and j in (255, 256) and k == start, text
    assert int(value_text) == _raw_value(p, ct_item, (i, j, k)), text

    # The wheel scrolls one slice per notch; the arrow keys too.
    for _ in range(3):
        p.mouse.wheel(0, 100)
    state = _wait_viewer(p, f"v.sliceIndex === {start + 3}")
    expect(p.locator("#slice-readout")).to_have_text(
        f"Slice {start + 4} / {CT_SLICES} · {(start + 3) * 5.0:.1f} mm"
    )
    rendered = state["renderCount"]
    viewport.focus()
    p.keyboard.press("ArrowUp")
    state = _wait_viewer(p, f"v.sliceIndex === {start + 2} && v.renderCount > {rendered}")

    # A left drag changes the window; the readout follows.
    before = state["window"]
    p.mouse.move(cx - 100, cy - 100)
    p.mouse.down()
    p.mouse.move(cx - 20, cy - 60, steps=8)
    p.mouse.up()
    state = _wait_viewer(
        p, f"v.window.width !== {before['width']} || v.window.center !== {before['center']}"
    )
    after = state["window"]
    assert after != before
    expect(p.locator("#window-readout")).to_have_text(
        f"W {round(after['width'])} / L {round(after['center'])}"
    )
    assert state["sliceIndex"] == start + 2  # dragging does not scroll

    # A preset sets its exact values.
    p.get_by_role("button", name="Lung").click()
    state = _wait_viewer(p, "Math.abs(v.window.center + 600) < 1e-6")
    assert state["window"]["width"] == pytest.approx(1500)
    expect(p.locator("#window-readout")).to_have_text("W 1500 / L -600")

    # A deep link works after a reload: the server answers the client route with the app.
    p.reload()
    state = _wait_viewer(p, "v.rendered")
    assert (state["itemId"], state["sliceIndex"]) == (ct_item, start)

    assert page.page_errors == []
    assert page.csp_violations() == []
    assert page.unexpected_errors() == []
