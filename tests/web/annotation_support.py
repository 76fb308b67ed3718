"""Real items for the annotation tests: a chest CT volume (pyradiomics lung2), the retina
photo and the SVS slide, ingested through the API."""

from __future__ import annotations

import importlib.util
import io
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
CT_SLICES = 12  # slices 20..31 of lung2: 512x512, 0.627 x 0.627 x 5 mm

SCHEMA = [
    {
        "name": "Nodule",
        "color": "#ff0000",
        "kinds": ["box", "polygon", "mask"],
        "attributes": [
            {"name": "Solid", "type": "bool", "required": True},
            {"name": "Diameter", "type": "number", "unit": "mm", "minimum": 0, "maximum": 300},
        ],
    },
    {"name": "Vessel", "color": "#00ff00", "kinds": ["polyline", "mask"]},
    {"name": "Carina", "color": "#0000ff", "kinds": ["point"]},
    {
        "name": "Quality",
        "color": "#ffff00",
        "kinds": ["classification"],
        "attributes": [
            {"name": "Grade", "type": "enum", "options": ["good", "poor"], "required": True}
        ],
    },
    {"name": "Tumour", "color": "#ff00ff", "kinds": ["polygon", "box", "mask"]},
]


def _demo_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_demo_data", ROOT / "scripts" / "make_demo_data.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ct_files(samples: Path, slices: int = CT_SLICES) -> dict[str, bytes]:
    demo = _demo_module()
    voxels, directions, origin = demo.read_nrrd(samples / "pyradiomics" / "lung2_image.nrrd")
    first = 20
    origin = origin + directions[:, 2] * first
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        demo.write_ct_series(
            voxels[first : first + slices], directions, origin, out, name="t", description="CT"
        )
        return {f"ct/{p.name}": p.read_bytes() for p in sorted(out.glob("*.dcm"))}


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def ingest(admin: Api, slug: str, entries: dict[str, bytes]) -> None:
    response = admin.post(
        f"/api/projects/{slug}/ingest",
        content=make_zip(entries),
        headers={"Content-Type": "application/zip"},
    )
    assert response.status_code == 202, response.text
    report = admin.get(f"/api/projects/{slug}/ingest/{response.json()['id']}").json()
    assert report["state"] == "done", report


def items_by_kind(admin: Api, slug: str) -> dict[str, dict[str, Any]]:
    listed = admin.get(f"/api/projects/{slug}/items?status=all").json()["items"]
    out: dict[str, dict[str, Any]] = {}
    for listed_item in listed:
        item = listed_item
        if item["status"] == "quarantined":
            released = admin.post(
                f"/api/items/{item['id']}/release", json={"reason": "checked: no text"}
            )
            assert released.status_code == 200, released.text
            item = released.json()
        out[item["kind"]] = item
    return out


def set_schema(admin: Api, slug: str) -> dict[str, int]:
    response = admin.put(
        f"/api/projects/{slug}/schema", json={"base_version": 0, "classes": SCHEMA}
    )
    assert response.status_code == 200, response.text
    return {c["key"]: c["value"] for c in response.json()["classes"]}
