"""Annotating a real CT in a real browser (frontend/src/components/AnnotationWorkspace.tsx):
pick a class, draw a box and a freehand polygon on one slice and a landmark on another, fill
the required attribute, wait for the autosave, undo and redo, reload, and check through the
API what the server stored. Then a conflict: while the page is offline with an unsaved edit,
another client saves the same set; back online, the page's save meets 409, merges, and both
changes survive.

Same harness as test_viewer.py: a real ``medlabel serve``, the demo project (its schema has
``lung_nodule`` (hotkey 1: box, polygon; required ``texture``) and ``carina`` (hotkey 4:
point)), Debian Chromium. The page's annotation state is ``window.__medlabel.annotations``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_login_page import COOKIE, WAIT_MS, Page
from tests.e2e.test_viewer import ct_item, page  # noqa: F401  (fixtures)
from tests.web.annotation_support import CT_SLICES


def _wait(p: Any, condition: str) -> dict[str, Any]:
    """Wait until `condition` (JS over `a`, the annotation state, and `v`, the viewer's)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        p.wait_for_function(
            "() => { const m = window.__medlabel || {}; "
            "const a = m.annotations; const v = m.viewer; "
            f"return !!a && !!v && ({condition}); }}",
            timeout=WAIT_MS,
        )
    except PlaywrightTimeout:
        now = p.evaluate("window.__medlabel && window.__medlabel.annotations")
        raise AssertionError(f"timed out waiting for {condition}; state: {now}") from None
    state = p.evaluate("window.__medlabel.annotations")
    assert isinstance(state, dict)
    return state


def _saved(p: Any, count: int) -> dict[str, Any]:
    return _wait(p, f"a.status === 'saved' && a.shapes.length === {count}")


@contextmanager
def _api(server: Server) -> Iterator[httpx2.Client]:
    """An API client logged in as the demo admin (the session cookie set by hand: it is
    Secure, and the test server is plain http)."""
    with httpx2.Client(base_url=server.url, timeout=httpx2.Timeout(30.0)) as client:
        yield _logged_in(client, server)


def _logged_in(client: httpx2.Client, server: Server) -> httpx2.Client:
    login = client.post(
        "/api/auth/login", json={"username": server.username, "password": server.password}
    )
    assert login.status_code == 200, login.text
    client.headers["Cookie"] = f"{COOKIE}={login.cookies[COOKIE]}"
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    client.cookies.clear()
    return client


def _drag(p: Any, points: list[tuple[float, float]]) -> None:
    p.mouse.move(*points[0])
    p.mouse.down()
    for x, y in points[1:]:
        p.mouse.move(x, y, steps=2)
    p.mouse.up()


def _expected_console(text: str) -> bool:
    # The page's own offline spell and the 409 it resolves are part of the test.
    return (
        "ERR_INTERNET_DISCONNECTED" in text
        or "status of 409" in text
        or ("status of 401" in text)
        or ("status of 404" in text and "favicon" in text)
    )


@pytest.mark.browser
def test_draw_save_undo_reload_and_merge_a_conflict(page: Page, ct_item: int) -> None:  # noqa: F811
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
    state = _wait(p, "v.rendered && v.loadedCount === v.sliceCount && a.layerReady")
    assert state["status"] == "saved" and state["shapes"] == [] and state["revision"] == 0
    set_id = state["setId"]

    viewport = p.locator("#viewport")
    box = viewport.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    # The key map.
    viewport.focus()
    p.keyboard.press("?")
    expect(p.locator("#keymap")).to_be_visible()
    p.keyboard.press("Escape")
    expect(p.locator("#keymap")).to_be_hidden()

    # A box of class "Lung nodule" (hotkey 1): not saved until its required texture is set.
    p.keyboard.press("1")
    p.keyboard.press("b")
    _wait(p, "a.activeClass === 'lung_nodule' && a.tool === 'box'")
    _drag(p, [(cx - 160, cy - 120), (cx - 120, cy - 90), (cx - 80, cy - 50)])
    state = _wait(p, "a.shapes.length === 1 && a.status === 'invalid'")
    assert state["shapes"][0]["kind"] == "box"
    expect(p.locator("#save-status")).to_contain_text("Texture")
    p.locator("#attr-texture").select_option("solid")
    state = _saved(p, 1)
    assert state["revision"] == 1

    # A freehand polygon on the same slice.
    viewport.focus()
    p.keyboard.press("p")
    ring = [
        (cx + 100 + 45 * math.cos(t * math.pi / 12), cy - 80 + 45 * math.sin(t * math.pi / 12))
        for t in range(24)
    ]
    _drag(p, [*ring, (ring[0][0] + 1, ring[0][1] + 1)])
    state = _wait(p, "a.shapes.length === 2")
    polygon = state["shapes"][1]
    assert polygon["kind"] == "polygon" and state["selected"] == polygon["id"]
    p.locator("#attr-texture").select_option("ground-glass")
    _saved(p, 2)

    # A landmark (Carina, hotkey 4) two slices further.
    viewport.focus()
    p.keyboard.press("ArrowDown")
    p.keyboard.press("ArrowDown")
    _wait(p, f"v.sliceIndex === {start + 2}")
    p.keyboard.press("4")
    p.keyboard.press("k")
    p.mouse.move(cx + 20, cy + 60)
    p.mouse.click(cx + 20, cy + 60, delay=50)
    p.mouse.move(cx + 30, cy + 70)
    state = _saved(p, 3)
    point = state["shapes"][2]
    assert point["kind"] == "point" and point["label"] == "carina"
    assert point["point"][2] == start + 2

    # Undo the landmark and redo it: both are saved.
    viewport.focus()
    p.keyboard.press("Control+z")
    state = _saved(p, 2)
    assert state["canRedo"] and state["revision"] == 4
    p.keyboard.press("Control+Shift+z")
    state = _saved(p, 3)
    assert state["revision"] == 5

    # A reload shows the stored shapes.
    p.reload()
    state = _wait(p, "v.rendered && a.layerReady && a.status === 'saved'")
    assert len(state["shapes"]) == 3 and state["revision"] == 5
    expect(p.locator("#shapes li")).to_have_count(3)

    with _api(server) as api:
        stored = api.get(f"/api/annotation-sets/{set_id}")
        assert stored.status_code == 200 and stored.headers["etag"] == '"v5"'
        doc = stored.json()
        by_kind = {a["kind"]: a for a in doc["annotations"]}
        assert sorted(by_kind) == ["box", "point", "polygon"]
        b, poly, pt = by_kind["box"], by_kind["polygon"], by_kind["point"]
        assert b["label"] == "lung_nodule" and b["attributes"]["texture"] == "solid"
        assert b["slice"] == start and poly["slice"] == start
        # Drawn up-left of the centre: index < 256; 80 x 70 CSS px is tens of voxels.
        assert 0 <= b["min"][0] < b["max"][0] < 256 and 0 <= b["min"][1] < b["max"][1] < 256
        assert 20 < b["max"][0] - b["min"][0] < 150 and 20 < b["max"][1] - b["min"][1] < 150
        assert poly["attributes"]["texture"] == "ground-glass" and len(poly["points"]) >= 6
        assert poly["points"][0] != poly["points"][-1]
        assert all(256 < i < 400 and 100 < j < 256 for i, j in poly["points"])
        assert pt["point"][2] == start + 2 and 256 < pt["point"][0] < 330
        assert 256 < pt["point"][1] < 360
        assert doc["measurements"][b["id"]]["area_mm2"] > 0

        # The conflict: an unsaved edit in the (offline) page, a save from elsewhere.
        p.locator(f"#shapes li[data-id='{b['id']}'] button").click()
        _wait(p, f"a.selected === '{b['id']}'")
        page.context.set_offline(True)
        p.locator("#attr-diameter").fill("12")
        _wait(p, "a.status === 'offline'")
        external = [
            *doc["annotations"],
            {"id": "ext1", "kind": "point", "label": "carina", "point": [100, 100, 1]},
        ]
        saved = api.put(
            f"/api/annotation-sets/{set_id}/annotations",
            json={"annotations": external},
            headers={"If-Match": '"v5"'},
        )
        assert saved.status_code == 201, saved.text
        page.context.set_offline(False)
        p.evaluate("window.dispatchEvent(new Event('online'))")
        state = _saved(p, 4)
        assert state["revision"] == 7 and state["merged"]["revision"] == 6

        doc = api.get(f"/api/annotation-sets/{set_id}").json()
        ids = {a["id"]: a for a in doc["annotations"]}
        assert "ext1" in ids
        assert ids[b["id"]]["attributes"] == {
            "texture": "solid",
            "diameter": 12,
            "calcified": False,
        }
        assert len(ids) == 4

    assert p.evaluate(f"localStorage.getItem('medlabel.annotations.pending.{set_id}')") is None
    assert page.page_errors == []
    assert page.csp_violations() == []
    assert [(t, u) for t, u in page.unexpected_errors() if not _expected_console(t)] == []
