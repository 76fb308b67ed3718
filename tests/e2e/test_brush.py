"""Painting a label map in a real browser (frontend/src/viewers/radiology/maskLayer.ts and
AnnotationWorkspace.tsx): pick a mask class, brush a stroke on slice k and another on slice
k+4, wait until each stroke's slice is saved through the mask API, click Interpolate, and
check through the API that the slices in between were filled.

Same harness as test_annotate.py (the demo project: ``liver``, hotkey 2, allows only masks).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.e2e.test_annotate import _api, _drag, _wait
from tests.e2e.test_login_page import WAIT_MS, Page
from tests.e2e.test_viewer import ct_item, page  # noqa: F401  (fixtures)
from tests.web.annotation_support import CT_SLICES


@pytest.mark.browser
def test_brush_two_slices_and_interpolate(page: Page, ct_item: int) -> None:  # noqa: F811
    from playwright.sync_api import expect

    p = page.page
    server = page.server
    p.goto(f"{server.url}/")
    p.locator("#username").fill(server.username)
    p.locator("#password").fill(server.password)
    p.get_by_role("button", name="Log in").click()
    expect(p.locator("#projects tbody tr[data-slug='demo']")).to_be_visible(timeout=WAIT_MS)
    p.goto(f"{server.url}/items/{ct_item}?project=demo")

    start = (CT_SLICES - 1) // 2
    state = _wait(
        p,
        "v.rendered && v.loadedCount === v.sliceCount && a.layerReady && a.maskStatus === 'saved'",
    )
    set_id = state["setId"]
    viewport = p.locator("#viewport")
    box = viewport.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # Liver (hotkey 2, masks only), the brush (r), a larger brush (]).
    viewport.focus()
    p.keyboard.press("2")
    p.keyboard.press("r")
    p.keyboard.press("]")
    _wait(p, "a.activeClass === 'liver' && a.tool === 'brush' && a.brushSize === 12")
    expect(p.locator("#interpolate")).to_be_visible()

    stroke = [(cx - 40 + 8 * i, cy + (10 if i % 2 else -10)) for i in range(11)]
    k0, k1 = start - 2, start + 2
    for _ in range(start - k0):
        p.keyboard.press("ArrowUp")
    _wait(p, f"v.sliceIndex === {k0}")
    _drag(p, stroke)
    _wait(p, "a.maskSaves === 1 && a.maskStatus === 'saved'")
    for _ in range(k1 - k0):
        p.keyboard.press("ArrowDown")
    _wait(p, f"v.sliceIndex === {k1}")
    _drag(p, stroke)
    _wait(p, "a.maskSaves === 2 && a.maskStatus === 'saved'")

    p.locator("#interpolate").click()
    state = _wait(p, "a.maskSaves === 3 && a.maskStatus === 'saved'")
    # The mask writes and the shape autosave share the revision: 2 strokes + 1 interpolation.
    assert state["revision"] == 3

    with _api(server) as api:
        schema = api.get("/api/projects/demo/schema").json()
        liver = next(c["value"] for c in schema["classes"] if c["key"] == "liver")
        response = api.get(
            f"/api/annotation-sets/{set_id}/masks/labelmap",
            params={"start": k0 - 1, "count": k1 - k0 + 3, "encoding": "zlib"},
        )
        assert response.status_code == 200, response.text
        shape = tuple(int(n) for n in response.headers["X-Mask-Shape"].split(","))
        mask = np.frombuffer(zlib.decompress(response.content), dtype=np.uint8).reshape(shape)
        counts = [int((s == liver).sum()) for s in mask]
        # No brush outside k0..k1; every slice k0..k1 holds the class, the middle ones filled.
        assert counts[0] == 0 and counts[-1] == 0, counts
        assert all(c > 50 for c in counts[1:-1]), counts
        assert set(np.unique(mask).tolist()) <= {0, liver}
        doc = api.get(f"/api/annotation-sets/{set_id}").json()
        assert doc["revision"] == 3
        ops = api.get(f"/api/annotation-sets/{set_id}/revisions").json()
        assert "interpolate" in str(ops)
    assert page.page_errors == []
    assert page.csp_violations() == []
