"""Versioned guidelines, HTML sanitising and image assets (SECURITY.md cases 33, 36)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from html.parser import HTMLParser
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.conftest import Api, add_member

PNG = {"Content-Type": "image/png"}


def url(slug: str, rest: str = "") -> str:
    return f"/api/projects/{slug}/guidelines{rest}"


def save(api: Api, slug: str, markdown: str, base: int | None, **kw: Any) -> Any:
    body: dict[str, Any] = {"markdown": markdown, **kw}
    if base is not None:
        body["base_version"] = base
    return api.put(url(slug), json=body)


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def png_bytes(size: tuple[int, int] = (6, 4), color: str = "red", **save_kw: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG", **save_kw)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A syntactically valid PNG that declares ``width`` x ``height`` but holds no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def upload(api: Api, slug: str, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return api.post(url(slug, "/assets"), content=data, headers=headers or PNG)


class Markup(HTMLParser):
    """Collects the live elements and attributes of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


# ---- versions ---------------------------------------------------------------------------


def test_guidelines_are_versioned_like_the_schema(admin: Api, project: str) -> None:
    empty = admin.get(url(project))
    assert empty.headers["etag"] == '"v0"'
    assert {k: empty.json()[k] for k in ("version", "markdown", "html")} == {
        "version": 0,
        "markdown": "",
        "html": "",
    }
    assert admin.get(url(project, "/versions")).json() == []

    first = save(admin, project, "# Nodules\n\nMark every *solid* nodule.", 0, comment="v1")
    body = ok(first)
    assert first.headers["etag"] == '"v1"' and body["version"] == 1
    assert "<h1>Nodules</h1>" in body["html"] and "<em>solid</em>" in body["html"]
    etag = admin.get(url(project)).headers["etag"]
    second = admin.put(url(project), json={"markdown": "# Nodules v2"}, headers={"If-Match": etag})
    assert ok(second)["version"] == 2 and second.headers["etag"] == '"v2"'

    stale = save(admin, project, "# lost update", 1)
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    stale_header = admin.put(url(project), json={"markdown": "x"}, headers={"If-Match": '"v1"'})
    assert stale_header.status_code == 409 and stale_header.json()["current_version"] == 2
    missing = save(admin, project, "x", None)
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
    assert (
        admin.put(url(project), json={"markdown": "x"}, headers={"If-Match": "v2"}).status_code
        == 422
    )

    listing = admin.get(url(project, "/versions")).json()
    assert [(v["version"], v["comment"]) for v in listing] == [(1, "v1"), (2, "")]
    old = admin.get(url(project, "/versions/1")).json()
    assert old["markdown"] == "# Nodules\n\nMark every *solid* nodule." and old == body
    assert admin.get(url(project)).json()["markdown"] == "# Nodules v2"
    assert admin.get(url(project, "/versions/3")).status_code == 404
    for absurd in ("99999999999", "-1"):
        assert admin.get(url(project, f"/versions/{absurd}")).status_code == 422, absurd
    events = admin.get(
        f"/api/projects/{project}/audit", params={"action": "guideline.version.create"}
    ).json()
    assert [e["detail"]["version"] for e in events] == [1, 2]


def test_bad_markdown_is_refused_on_every_database(admin: Api, project: str) -> None:
    for markdown in (
        "",
        "   \n ",
        "nul \u0000 byte",
        "rtl \u202e override",
        "zero\u200bwidth",
        "x" * 200_001,
    ):
        response = save(admin, project, markdown, 0)
        assert response.status_code == 422, repr(markdown[:20])
    assert save(admin, project, "ok", 0, comment="bad\u0000").status_code == 422
    assert save(admin, project, "ok", 0, project_id=2).status_code == 422
    assert admin.get(url(project)).json()["version"] == 0
    body = ok(save(admin, project, "tabs\tand\nnewlines are fine", 0))
    assert body["markdown"] == "tabs\tand\nnewlines are fine"


# ---- sanitised HTML -------------------------------------------------------------------------

HOSTILE = """# Guide

<script>alert(1)</script>

<img src=x onerror=alert(2)>

<a href="javascript:alert(3)">raw link</a>

<svg onload=alert(4)></svg><iframe src="https://evil.example"></iframe>

[click](javascript:alert(5)) and [CLICK](JaVaScRiPt:alert(6)) and <javascript:alert(7)>

![pic](javascript:alert(8)) [data](data:text/html;base64,PHNjcmlwdD4=) [vb](vbscript:x)

[ref link][1]

[1]: javascript:alert(9)

[safe](https://example.org/guide) and <mailto:qa@example.org>

[ftp](ftp://example.org/x) ![inline](data:image/png;base64,iVBORw0KGgo=) [rel](/help)

| a | b |
|---|---|
| <b onclick=x>1</b> | 2 |
"""


def test_rendered_html_has_no_live_script(admin: Api, project: str) -> None:
    html = ok(save(admin, project, HOSTILE, 0))["html"]
    assert ok(admin.get(url(project)))["html"] == html
    tags = Markup(html).tags
    names = {tag for tag, _ in tags}
    assert not names & {"script", "svg", "iframe", "object", "embed", "style"}
    links = []
    for tag, attrs in tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                links.append(value)
    assert links == ["https://example.org/guide", "mailto:qa@example.org", "/help"]
    assert "<script" not in html.lower()
    # The hostile markup is shown to the reader as text, not dropped silently.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://example.org/guide" rel="noopener noreferrer nofollow">safe</a>' in (
        html
    )
    assert 'href="mailto:qa@example.org"' in html
    # Schemes Markdown itself lets through (ftp:, data:image) are removed by the sanitiser.
    assert '<a rel="noopener noreferrer nofollow">ftp</a>' in html
    assert '<img alt="inline">' in html
    assert "<table>" in html and "<td>" in html


# ---- image assets ---------------------------------------------------------------------------


def test_png_upload_returns_hash_and_markdown_and_serves_it(admin: Api, project: str) -> None:
    data = png_bytes((7, 5), "blue")
    asset = ok(upload(admin, project, data), 201)
    sha = asset["sha256"]
    assert len(sha) == 64 and set(sha) <= set("0123456789abcdef")
    assert asset["markdown"] == f"![image](asset:{sha})"
    assert asset["url"] == url(project, f"/assets/{sha}")
    assert (asset["media_type"], asset["width"], asset["height"]) == ("image/png", 7, 5)

    served = admin.get(asset["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert hashlib.sha256(served.content).hexdigest() == sha
    with Image.open(io.BytesIO(served.content)) as img:
        assert (img.format, img.size, img.getpixel((0, 0))) == ("PNG", (7, 5), (0, 0, 255))
    assert served.headers["etag"] == f'"{sha}"'
    cached = admin.get(asset["url"], headers={"If-None-Match": f'"{sha}"'})
    assert cached.status_code == 304 and cached.content == b""
    assert cached.headers["etag"] == f'"{sha}"'
    assert admin.get(asset["url"], headers={"If-None-Match": '"other"'}).status_code == 200
    assert admin.get(url(project, f"/assets/{sha.upper()}")).status_code == 200

    again = ok(upload(admin, project, data), 201)
    assert again["sha256"] == sha
    events = admin.get(
        f"/api/projects/{project}/audit", params={"action": "guideline.asset.create"}
    ).json()
    assert [e["object_id"] for e in events] == [sha]

    body = ok(save(admin, project, f"See:\n\n{asset['markdown']}", 0))
    assert f'<img src="{asset["url"]}" alt="image">' in body["html"]


def test_metadata_is_removed_by_re_encoding(admin: Api, project: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "EvilCam"  # Make
    exif[0x8298] = "Patient: Jane Roe"  # Copyright
    raw = io.BytesIO()
    Image.new("RGB", (16, 8), "green").save(raw, "JPEG", exif=exif.tobytes())
    assert b"Jane Roe" in raw.getvalue()
    asset = ok(upload(admin, project, raw.getvalue(), {"Content-Type": "image/jpeg"}), 201)
    assert (asset["media_type"], asset["width"], asset["height"]) == ("image/jpeg", 16, 8)
    served = admin.get(asset["url"]).content
    assert b"Jane Roe" not in served and b"EvilCam" not in served and b"Exif" not in served
    with Image.open(io.BytesIO(served)) as img:
        assert img.format == "JPEG" and len(img.getexif()) == 0

    info = PngInfo()
    info.add_text("PatientName", "Roe^Jane")
    tagged = png_bytes(pnginfo=info)
    assert b"Roe^Jane" in tagged
    png = ok(upload(admin, project, tagged), 201)
    assert b"Roe^Jane" not in admin.get(png["url"]).content


def test_gif_is_stored_as_png(admin: Api, project: str) -> None:
    raw = io.BytesIO()
    Image.new("P", (3, 3), 1).save(raw, "GIF")
    asset = ok(upload(admin, project, raw.getvalue(), {"Content-Type": "image/gif"}), 201)
    assert asset["media_type"] == "image/png"
    assert admin.get(asset["url"]).content.startswith(b"\x89PNG")


def test_non_images_are_refused_with_415(admin: Api, project: str) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    bmp = io.BytesIO()
    Image.new("RGB", (2, 2)).save(bmp, "BMP")
    truncated = png_bytes((64, 64))[:-40]
    cases = [
        (b"definitely not an image", PNG),
        (svg, {"Content-Type": "image/svg+xml"}),
        (b"%PDF-1.7\n", {"Content-Type": "image/png"}),
        (bmp.getvalue(), {"Content-Type": "image/bmp"}),
        (truncated, PNG),
        (png_bytes(), {"Content-Type": "text/plain"}),
        (png_bytes(), {"Content-Type": "application/octet-stream"}),
        (b"", PNG),
    ]
    for data, headers in cases:
        response = upload(admin, project, data, headers)
        assert response.status_code == 415, (data[:20], headers, response.text)
        assert response.json()["code"] == "unsupported"
    assert (
        admin.get(
            f"/api/projects/{project}/audit", params={"action": "guideline.asset.create"}
        ).json()
        == []
    )


def test_decompression_bombs_are_refused_with_413(admin: Api, project: str) -> None:
    # Far beyond Pillow's limit, between Pillow's warning and error, and above our own limit.
    for width, height in ((100_000, 100_000), (10_000, 10_000), (8_000, 6_000)):
        response = upload(admin, project, png_header_only(width, height))
        assert response.status_code == 413, (width, height, response.text)
        assert response.json()["code"] == "too_large"
    assert (
        admin.get(
            f"/api/projects/{project}/audit", params={"action": "guideline.asset.create"}
        ).json()
        == []
    )


def test_uploads_above_the_limits_get_413(admin: Api, project: str, settings) -> None:
    huge = b"\x89PNG" + b"\x00" * (10 * 1024 * 1024)  # above the 10 MiB image limit
    response = upload(admin, project, huge)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    settings.max_upload_bytes = 4096
    data = png_bytes((8, 8))
    assert len(data) < 4096
    assert upload(admin, project, data).status_code == 201
    too_big = upload(admin, project, b"\x00" * 4097)
    assert too_big.status_code == 413 and too_big.json()["code"] == "too_large"

    def chunks() -> Any:  # no Content-Length: the received bytes are counted
        for _ in range(3):
            yield b"\x00" * 2000

    chunked = admin.post(url(project, "/assets"), content=chunks(), headers=PNG)
    assert chunked.status_code == 413
    # The JSON limit applies to the other endpoints of the same project.
    assert save(admin, project, "x" * 5000, 0).status_code == 200


def test_assets_must_be_uploaded_to_the_same_project(admin: Api, make_user) -> None:
    for slug in ("chest-ct", "brain-mr"):
        ok(admin.post("/api/projects", json={"slug": slug, "name": slug}), 201)
    bob = make_user("bob")
    add_member(admin, "brain-mr", "bob", "admin")
    vic = make_user("vic")
    add_member(admin, "chest-ct", "vic", "viewer")
    asset = ok(upload(admin, "chest-ct", png_bytes(color="purple")), 201)
    sha = asset["sha256"]
    assert vic.get(asset["url"]).status_code == 200  # members of A may read it
    assert bob.get(asset["url"]).status_code == 404  # not a member of A
    via_b = bob.get(url("brain-mr", f"/assets/{sha}"))
    assert via_b.status_code == 404 and via_b.json()["code"] == "not_found"
    unknown = save(bob, "brain-mr", f"![x](asset:{sha})", 0)
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {"field": "markdown", "problem": "unknown_asset", "sha256": sha}
    ]
    never = save(admin, "chest-ct", "![x](asset:" + "0" * 64 + ")", 0)
    assert never.status_code == 422
    assert admin.get(url("brain-mr")).json()["version"] == 0
    # Uploading the same picture to B makes it B's own asset too.
    mine = ok(upload(bob, "brain-mr", png_bytes(color="purple")), 201)
    assert mine["sha256"] == sha
    assert bob.get(url("brain-mr", f"/assets/{sha}")).status_code == 200
    assert ok(save(bob, "brain-mr", mine["markdown"], 0))["version"] == 1
    assert bob.get(asset["url"]).status_code == 404  # still nothing through A


def test_odd_asset_ids_are_not_found(admin: Api, project: str) -> None:
    for sha in ("..%2F..%2Fetc%2Fpasswd", "0" * 64, "z" * 64, "A" * 64):
        response = admin.get(url(project, f"/assets/{sha}"))
        assert response.status_code == 404, (sha, response.text)
    for sha in ("%00", "a" * 64 + "%00"):  # a NUL in the URL is refused outright
        assert admin.get(url(project, f"/assets/{sha}")).status_code == 400
