#!/usr/bin/env python3
"""Imaging path of a real ``medlabel serve`` against Orthanc and bare pydicom, in one run.

One command measures, on the same machine and in the same run, with rounds of ours and
Orthanc's interleaved so that drifts in machine load hit both:

* **ingest** of a CT series (default ``.cache/bench-ct-300``: 300 slices of 512x512, ~525 KB
  each, built by ``scripts/make_demo_data.py --bench-slices 300``): ``medlabel ingest`` end to
  end (wall time of the command) and the ingest job's own duration (``started_at`` to
  ``finished_at`` in the ``ingest_job`` table), with the default decoder count and with
  ``MEDLABEL_INGEST_WORKERS=1``; Orthanc ``POST /instances`` with 1 and 4 clients; bare
  ``pydicom.dcmread`` + SHA-256 over the same files in this process (and, for reference,
  with ``pixel_array`` too);
* **slice serving** with 1 and 8 clients (``bench/loadgen.py``), round-robin over the series:
  our ``/api/items/{id}/frames/{k}/raw`` vs Orthanc's ``/instances/{id}/frames/0/raw``, and our
  ``.../frames/{k}/rendered?center=40&width=400&format=png`` vs Orthanc's
  ``/instances/{id}/rendered?window-center=40&window-width=400`` (PNG);
* **whole series to the viewer**: one request to our batch endpoint
  ``/api/items/{id}/frames/raw?start=0&count=N`` vs 8 clients fetching all N raw frames from
  Orthanc one by one (median of ``--series-repeats``); for reference also ours frame by frame
  with 8 clients and ours as 8 batch requests of 1/8 of the series each, from 8 clients.

It prints markdown tables with ratios (ours / Orthanc, ours / bare pydicom) and a final
``SUMMARY`` line with pass/fail per target of the issue. Orthanc runs from a config in a fresh
temporary directory (SQLite index and storage there, DICOM listener, remote access, auth and
HTTP compression off); ours is ``medlabel serve`` on a fresh data directory. Both are stopped
and the temporary directories removed in ``finally`` blocks. As root, the whole run re-executes
itself in a private network namespace (``unshare -n``, only ``lo`` up) because Orthanc 1.10
cannot bind to loopback only; ``--netns off`` disables that.

    /tmp/v/bin/python bench/bench_imaging.py --rounds 2 --json /tmp/imaging.json
    /tmp/v/bin/python bench/bench_imaging.py --parts serve --rounds 1 --requests 300
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import io
import json
import math
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bench_api import BenchError, Server, conditions, free_port, medlabel_command, versions
from loadgen import Request, Result, Target, merge, run

HOST = "127.0.0.1"
PROJECT = "demo"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERIES = ROOT / ".cache" / "bench-ct-300"
NETNS_ENV = "BENCH_IMAGING_IN_NETNS"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CENTER, WIDTH = 40, 400
PARTS = ("ingest", "serve", "series")
DICOMWEB_PLUGINS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)

# Targets of the issue (ours relative to Orthanc measured in the same run).
INGEST_TARGET = 2.0  # files/s, ours end to end vs Orthanc's best client count
RAW_TARGET = 1.0  # req/s vs Orthanc, at each client count ...
RAW_P95_MS = 20.0  # ... with p95 under this
PNG_TARGET = 2.0  # req/s vs Orthanc, at each client count
SERIES_TARGET = 3.0  # Orthanc's 8-client time / our batch time


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU of all waited-for descendants (a ``medlabel ingest`` and its decoder processes)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.msg, r.read()
    finally:
        conn.close()


def code_version() -> dict[str, Any]:
    """Which code was measured: the commit, and a digest of every file under src/ as it was
    (the working tree may hold uncommitted changes)."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    out: dict[str, Any] = {"src_sha256": digest.hexdigest()[:16]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        out["commit"] = head.stdout.strip()
        out["src_changed_files"] = len(dirty.stdout.splitlines())
    return out


# ---- private network namespace --------------------------------------------------------


def enter_netns(mode: str, argv: Sequence[str]) -> str:
    """Re-execute this command inside ``unshare -n`` (only ``lo`` up) when asked or possible.

    Returns how the run is isolated: ``"netns"`` (inside the namespace) or ``"none"``."""
    if os.environ.get(NETNS_ENV) == "1":
        return "netns"
    if mode == "off":
        return "none"
    if not netns_usable():
        if mode == "on":
            raise SystemExit("--netns on: `unshare -n` (as root, with `ip`) is not available")
        log("# no private network namespace: Orthanc will listen on all interfaces (loopback-only")
        log("#   clients are enforced by RemoteAccessAllowed=false); use --netns off to silence")
        return "none"
    reexec_in_netns(Path(__file__), argv, NETNS_ENV)


def netns_usable() -> bool:
    """Whether this process may run itself again in a private network namespace."""
    return (
        os.geteuid() == 0
        and shutil.which("unshare") is not None
        and shutil.which("ip") is not None
        and subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode
        == 0
    )


def reexec_in_netns(script: Path, argv: Sequence[str], marker: str) -> NoReturn:
    """Replace this process by ``script argv`` inside ``unshare -n`` with only ``lo`` up; the
    environment variable ``marker`` tells the new process it is inside."""
    env = {**os.environ, marker: "1"}
    shell = 'ip link set lo up && exec "$0" "$@"'
    cmd = ["unshare", "-n", "sh", "-c", shell, sys.executable, str(script), *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("unshare", cmd, env)  # noqa: S606 - fixed command, our own arguments


# ---- the series -------------------------------------------------------------------------


@dataclass
class Series:
    folder: Path
    paths: list[Path]
    blobs: list[bytes]

    @classmethod
    def load(cls, folder: Path) -> Series:
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not paths:
            raise BenchError(
                f"no files in {folder}; build it with `python3 scripts/fetch_data.py --tier demo"
                " && python scripts/make_demo_data.py --bench-slices 300`"
            )
        return cls(folder, paths, [p.read_bytes() for p in paths])

    @property
    def n(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.blobs))


# ---- Orthanc ------------------------------------------------------------------------------


@dataclass
class Orthanc:
    """An Orthanc process on a config in ``workdir`` (use as a context manager)."""

    workdir: Path
    binary: str
    dicomweb: bool = True
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / "orthanc.log"

    def config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        plugin = next((p for p in DICOMWEB_PLUGINS if Path(p).exists()), None)
        plugins = [plugin] if plugin and self.dicomweb else []
        return {
            "Name": "medlabel-bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.port,
            "DicomServerEnabled": False,
            "DicomPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpCompressionEnabled": False,
            "Plugins": plugins,
            "DicomWeb": {"Enable": True, "Host": f"{HOST}:{self.port}", "Ssl": False},
        }

    def start(self, timeout: float = 60.0) -> None:
        for _attempt in range(3):  # the probed port may be taken before Orthanc binds it
            self.port = free_port()
            cfg = self.workdir / "orthanc.json"
            cfg.write_text(json.dumps(self.config(), indent=1))
            with self.log_path.open("ab") as out:
                self.proc = subprocess.Popen(
                    [self.binary, str(cfg)],
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            end = time.monotonic() + timeout
            while time.monotonic() < end and self.proc.poll() is None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    status, _, body = http_request(self.port, "GET", "/system", timeout=5)
                    if status == 200:
                        self.info["system"] = json.loads(body)
                        return
                time.sleep(0.2)
            self.stop()
        raise BenchError(f"Orthanc did not start; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Orthanc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def get_json(self, path: str) -> Any:
        status, _, body = http_request(self.port, "GET", path)
        if status != 200:
            raise BenchError(f"Orthanc GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def count(self) -> int:
        return int(self.get_json("/statistics")["CountInstances"])

    def delete_all(self) -> None:
        for pid in self.get_json("/patients"):
            status, _, body = http_request(self.port, "DELETE", f"/patients/{pid}")
            if status != 200:
                raise BenchError(f"Orthanc DELETE /patients/{pid}: {status} {body[:200]!r}")
        if self.count():
            raise BenchError("Orthanc still holds instances after deleting every patient")

    def instances_in_order(self) -> list[str]:
        """Instance ids sorted by InstanceNumber (then id)."""
        rows = self.get_json("/instances?expand")

        def key(row: dict[str, Any]) -> tuple[int, str]:
            number = row.get("MainDicomTags", {}).get("InstanceNumber", "")
            return (int(number) if str(number).strip().lstrip("-").isdigit() else 0, row["ID"])

        return [row["ID"] for row in sorted(rows, key=key)]


# ---- ingest -------------------------------------------------------------------------------


@dataclass
class IngestRun:
    files: int
    nbytes: int
    wall_s: float
    cpu_s: float
    load1: float
    job_s: float | None = None
    staging_s: float | None = None
    errors: int = 0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def job_files_per_s(self) -> float:
        return self.files / self.job_s if self.job_s else float("nan")

    def summary(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 3)

        return {
            "files": self.files,
            "bytes": self.nbytes,
            "wall_s": round(self.wall_s, 4),
            "files_per_s": round(self.files_per_s, 2),
            "job_s": None if self.job_s is None else round(self.job_s, 4),
            "job_files_per_s": None if self.job_s is None else round(self.job_files_per_s, 2),
            "staging_s": None if self.staging_s is None else round(self.staging_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "cpu_ms_per_file": round(self.cpu_s * 1e3 / self.files, 3),
            "errors": self.errors,
            "p50_ms": num(self.p50_ms),
            "p95_ms": num(self.p95_ms),
            "load1": self.load1,
        }


def _parse_ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def job_times(data_dir: Path) -> tuple[float | None, float | None, dict[str, int]]:
    """(job seconds, staging seconds, outcome counts) of the latest ingest job."""
    db = data_dir / "medlabel.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            "SELECT created_at, started_at, finished_at, counts FROM ingest_job "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    if row is None:
        return None, None, {}
    created, started, finished = (_parse_ts(v) for v in row[:3])
    counts = json.loads(row[3]) if row[3] else {}
    job = (finished - started).total_seconds() if finished and started else None
    staging = (started - created).total_seconds() if started and created else None
    return job, staging, counts


def ours_ingest(workdir: Path, series: Series, workers: int | None) -> tuple[IngestRun, Server]:
    """``medlabel demo`` (untimed), then ``medlabel ingest`` of the series, timed end to end."""
    server = Server(workdir)
    server.seed()
    env = server.env()
    if workers is not None:
        env["MEDLABEL_INGEST_WORKERS"] = str(workers)
    cmd = [*medlabel_command(), "ingest", str(series.folder), "--project", PROJECT]
    cmd += ["--data-dir", str(server.data_dir)]
    load1 = os.getloadavg()[0]
    cpu0 = children_cpu_seconds()
    t0 = time.perf_counter()
    with (workdir / "ingest.log").open("ab") as out:
        done = subprocess.run(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            timeout=1800, check=False,
        )  # fmt: skip
    wall = time.perf_counter() - t0
    cpu = children_cpu_seconds() - cpu0
    if done.returncode != 0:
        tail = (workdir / "ingest.log").read_text(errors="replace")[-2000:]
        raise BenchError(f"medlabel ingest failed ({done.returncode}):\n{tail}")
    job_s, staging_s, counts = job_times(server.data_dir)
    errors = series.n - counts.get("ingested", 0)
    return (
        IngestRun(series.n, series.nbytes, wall, cpu, load1, job_s, staging_s, errors),
        server,
    )


def orthanc_ingest(orthanc: Orthanc, series: Series, clients: int, seconds: float) -> IngestRun:
    orthanc.delete_all()
    headers = (("Content-Type", "application/dicom"),)
    requests = [Request("POST", "/instances", headers, blob) for blob in series.blobs]
    cpu0 = orthanc.cpu_seconds()
    res = run(
        Target(HOST, orthanc.port),
        requests,
        clients=clients,
        max_requests=len(requests),
        max_seconds=seconds,
        warmup=0,  # a warm-up would store files that the timed phase then finds stored
        label=f"orthanc POST /instances c{clients}",
    )
    cpu = orthanc.cpu_seconds() - cpu0
    stored = orthanc.count()
    errors = res.errors + max(0, series.n - stored)
    run_ = IngestRun(
        res.ok, series.nbytes, res.elapsed_s, cpu, res.load1_before, errors=errors,
        p50_ms=res.p50_ms, p95_ms=res.p95_ms,
    )  # fmt: skip
    return run_


def bare_pydicom(series: Series, pixels: bool) -> IngestRun:
    """Read + SHA-256 + ``pydicom.dcmread`` of every file in this process (one core)."""
    import pydicom

    load1 = os.getloadavg()[0]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for path in series.paths:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        ds = pydicom.dcmread(io.BytesIO(data))
        if pixels:
            _ = ds.pixel_array
    wall = time.perf_counter() - t0
    return IngestRun(series.n, series.nbytes, wall, time.process_time() - cpu0, load1)


INGEST_VARIANTS = (
    "ours_default",
    "ours_w1",
    "orthanc_c1",
    "orthanc_c4",
    "bare_dcmread",
    "bare_pixels",
)


def _empty_runs() -> dict[str, list[IngestRun]]:
    return {v: [] for v in INGEST_VARIANTS}


@dataclass
class IngestResults:
    runs: dict[str, list[IngestRun]] = field(default_factory=_empty_runs)
    serving_server: Server | None = None
    default_workers: int = 0

    def median(self, variant: str, attr: str = "files_per_s") -> float:
        values = [getattr(r, attr) for r in self.runs[variant]]
        values = [v for v in values if v is not None and not math.isnan(v)]
        return statistics.median(values) if values else float("nan")


def measure_ingest(
    workroot: Path, series: Series, orthanc: Orthanc, rounds: int, seconds: float
) -> IngestResults:
    out = IngestResults(default_workers=max(1, min(4, os.cpu_count() or 1)))
    steps: dict[str, Callable[[int], IngestRun]] = {}

    def ours(variant: str, workers: int | None) -> Callable[[int], IngestRun]:
        def step(r: int) -> IngestRun:
            workdir = workroot / f"ingest-{variant}-{r}"
            workdir.mkdir()
            result, server = ours_ingest(workdir, series, workers)
            if variant == "ours_default":
                # keep the newest default-worker data dir for serving, remove the others
                if out.serving_server is not None:
                    shutil.rmtree(out.serving_server.workdir, ignore_errors=True)
                out.serving_server = server
            else:
                shutil.rmtree(workdir, ignore_errors=True)
            return result

        return step

    steps["bare_dcmread"] = lambda r: bare_pydicom(series, pixels=False)
    steps["ours_default"] = ours("ours_default", None)
    steps["orthanc_c1"] = lambda r: orthanc_ingest(orthanc, series, 1, seconds)
    steps["ours_w1"] = ours("ours_w1", 1)
    steps["orthanc_c4"] = lambda r: orthanc_ingest(orthanc, series, 4, seconds)
    steps["bare_pixels"] = lambda r: bare_pydicom(series, pixels=True)
    order = list(steps)
    for r in range(rounds):
        for variant in order if r % 2 == 0 else order[::-1]:
            res = steps[variant](r)
            out.runs[variant].append(res)
            job = f", job {res.job_files_per_s:.1f} files/s" if res.job_s else ""
            log(
                f"  [ingest round {r + 1}/{rounds}] {variant}: {res.files_per_s:.1f} files/s "
                f"({res.wall_s:.2f} s{job}), CPU {res.cpu_s * 1e3 / res.files:.2f} ms/file, "
                f"{res.errors} errors, load1 {res.load1:.2f}"
            )
    if orthanc.count() != series.n:  # serving needs the series stored once
        orthanc_ingest(orthanc, series, 4, seconds)
    return out


# ---- serving ------------------------------------------------------------------------------


@dataclass
class Phase:
    system: str
    test: str
    clients: int
    rounds: list[Result] = field(default_factory=list)
    server_cpu_s: float = 0.0

    @property
    def pooled(self) -> Result:
        return merge(self.rounds, label=f"{self.system} {self.test}")

    @property
    def cpu_ms_per_req(self) -> float:
        ok = sum(r.ok for r in self.rounds)
        return self.server_cpu_s * 1e3 / ok if ok else float("nan")

    def summary(self) -> dict[str, Any]:
        pooled = self.pooled
        return {
            "system": self.system,
            "test": self.test,
            **pooled.summary(),
            "bytes_per_response": round(pooled.bytes_in / pooled.ok) if pooled.ok else None,
            "server_cpu_s": round(self.server_cpu_s, 4),
            "server_cpu_ms_per_req": round(self.cpu_ms_per_req, 4),
            "rps_rounds": [round(r.rps, 2) for r in self.rounds],
        }


@dataclass
class Side:
    """One system under test: where it listens, its requests per test, its CPU clock."""

    name: str
    port: int
    cpu: Callable[[], float]
    tests: dict[str, list[Request]]


def ours_side(server: Server, token: str) -> tuple[Side, dict[str, Any]]:
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = http_request(
        server.port, "GET", f"/api/projects/{PROJECT}/items?limit=10", headers=auth
    )
    if status != 200:
        raise BenchError(f"item list: {status} {body[:300]!r}")
    items = [i for i in json.loads(body)["items"] if i.get("kind") == "volume"]
    if len(items) != 1:
        raise BenchError(f"expected one volume item after ingest, got {len(items)}")
    item = items[0]
    frames = int(item["pixel"]["frames"])
    iid = item["id"]
    h = tuple(auth.items())
    raw = [Request(path=f"/api/items/{iid}/frames/{k}/raw", headers=h) for k in range(frames)]
    png = [
        Request(
            path=f"/api/items/{iid}/frames/{k}/rendered?center={CENTER}&width={WIDTH}&format=png",
            headers=h,
        )
        for k in range(frames)
    ]
    batch = [Request(path=f"/api/items/{iid}/frames/raw?start=0&count={frames}", headers=h)]
    step = -(-frames // 8)
    batch8 = [
        Request(
            path=f"/api/items/{iid}/frames/raw?start={a}&count={min(step, frames - a)}", headers=h
        )
        for a in range(0, frames, step)
    ]
    tests = {"raw": raw, "png": png, "batch": batch, "batch8": batch8}
    side = Side("ours", server.port, server.cpu_seconds, tests)
    return side, {"item_id": iid, "frames": frames, "pixel": item["pixel"]}


def orthanc_side(orthanc: Orthanc) -> Side:
    ids = orthanc.instances_in_order()
    win = f"window-center={CENTER}&window-width={WIDTH}"
    return Side(
        "orthanc",
        orthanc.port,
        orthanc.cpu_seconds,
        {
            "raw": [Request(path=f"/instances/{i}/frames/0/raw") for i in ids],
            "png": [Request(path=f"/instances/{i}/rendered?{win}") for i in ids],
        },
    )


def preflight(side: Side, frame_bytes: int) -> dict[str, int]:
    """One request per test: status 200 and the expected body (raw size, PNG signature)."""
    sizes = {}
    for test, requests in side.tests.items():
        req = requests[len(requests) // 2]
        status, msg, body = http_request(side.port, "GET", req.path, headers=dict(req.headers))
        if status != 200:
            raise BenchError(f"{side.name} GET {req.path}: {status} {body[:300]!r}")
        if test == "raw" and len(body) != frame_bytes:
            raise BenchError(f"{side.name} raw frame has {len(body)} bytes, not {frame_bytes}")
        if test == "png" and not body.startswith(b"\x89PNG"):
            raise BenchError(f"{side.name} rendered frame is not a PNG ({msg['content-type']})")
        if test == "batch" and len(body) != frame_bytes * len(side.tests["raw"]):
            raise BenchError(f"{side.name} batch has {len(body)} bytes")
        sizes[test] = len(body)
    return sizes


def measure_serving(
    sides: Sequence[Side],
    *,
    clients: Sequence[int],
    rounds: int,
    max_requests: int,
    seconds: float,
    warmup: int,
) -> list[Phase]:
    phases: dict[tuple[str, str, int], Phase] = {}
    for r in range(rounds):
        for c in clients:
            for test in ("raw", "png"):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    key = (side.name, test, c)
                    phase = phases.setdefault(key, Phase(side.name, test, c))
                    cpu0 = side.cpu()
                    res = run(
                        Target(HOST, side.port),
                        side.tests[test],
                        clients=c,
                        max_requests=max_requests,
                        max_seconds=seconds,
                        warmup=warmup,
                        label=f"{side.name} {test}",
                    )
                    phase.server_cpu_s += side.cpu() - cpu0
                    phase.rounds.append(res)
                    log(
                        f"  [serve round {r + 1}/{rounds}] c={c} {side.name} {test}: "
                        f"{res.rps:.0f} req/s p50 {res.p50_ms:.2f} p95 {res.p95_ms:.2f} ms, "
                        f"{res.errors} errors, load1 {res.load1_before:.2f}"
                    )
    order = {(s.name, t, c): i for i, (c, t, s) in enumerate(
        (c, t, s) for c in clients for t in ("raw", "png") for s in sides
    )}  # fmt: skip
    return sorted(phases.values(), key=lambda p: order[(p.system, p.test, p.clients)])


# ---- whole series -----------------------------------------------------------------------


@dataclass
class SeriesTimes:
    label: str
    seconds: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    client_cpu_s: list[float] = field(default_factory=list)
    bytes_in: int = 0
    errors: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": [round(s, 4) for s in self.seconds],
            "median_s": round(self.median, 4),
            "server_cpu_s": [round(c, 4) for c in self.cpu_s],
            "client_cpu_s": [round(c, 4) for c in self.client_cpu_s],
            "bytes_per_series": self.bytes_in // max(1, len(self.seconds)),
            "errors": self.errors,
        }


def measure_series(ours: Side, orthanc: Side, repeats: int, seconds: float) -> list[SeriesTimes]:
    """Time to deliver every frame of the series: our one batch request, Orthanc's frames
    with 8 clients, ours frame by frame with 8 clients (reference). Each repeat is a fresh
    phase; the warm-up (1 request per client, connection set-up) is not timed."""
    n = len(ours.tests["raw"])
    jobs = [
        (SeriesTimes("ours batch (1 request)"), ours, "batch", 1, 1),
        (SeriesTimes("orthanc frame by frame, 8 clients"), orthanc, "raw", 8, n),
        (SeriesTimes("ours frame by frame, 8 clients"), ours, "raw", 8, n),
        (SeriesTimes("ours batch split in 8 ranges, 8 clients"), ours, "batch8", 8, 8),
    ]
    for r in range(repeats):
        for times, side, test, clients, count in jobs if r % 2 == 0 else jobs[::-1]:
            cpu0 = side.cpu()
            res = run(
                Target(HOST, side.port),
                side.tests[test],
                clients=clients,
                max_requests=count,
                max_seconds=seconds,
                warmup=1,
                timeout=300,
                label=times.label,
            )
            times.cpu_s.append(side.cpu() - cpu0)
            times.client_cpu_s.append(res.client_cpu_s)
            times.seconds.append(res.elapsed_s)
            times.bytes_in += res.bytes_in
            times.errors += res.errors + (res.ok != count)
            log(
                f"  [series {r + 1}/{repeats}] {times.label}: {res.elapsed_s * 1e3:.0f} ms, "
                f"{res.bytes_in / 1e6:.0f} MB, {res.errors} errors"
            )
    return [j[0] for j in jobs]


def pixel_check(ours: Side, orthanc: Orthanc, ids: list[str], pixel: dict[str, Any]) -> str:
    """Do both serve the same pixels? Ours stores modality values (slope/intercept applied),
    Orthanc's raw frame is the stored value: compare the multisets of per-frame hashes."""
    import numpy as np

    req = ours.tests["batch"][0]
    status, _, body = http_request(ours.port, "GET", req.path, headers=dict(req.headers))
    if status != 200:
        return f"not checked (batch {status})"
    dtype = np.dtype(pixel.get("dtype", "int16")).newbyteorder("<")
    shape = (int(pixel["frames"]), int(pixel["rows"]), int(pixel["columns"]))
    mine = np.frombuffer(body, dtype=dtype).reshape(shape)
    tags = orthanc.get_json(f"/instances/{ids[0]}/simplified-tags")
    stored = np.dtype("<i2" if str(tags.get("PixelRepresentation", "0")) == "1" else "<u2")
    slope = float(tags.get("RescaleSlope", 1) or 1)
    intercept = float(tags.get("RescaleIntercept", 0) or 0)
    theirs = []
    for oid in ids:
        status, _, raw = http_request(orthanc.port, "GET", f"/instances/{oid}/frames/0/raw")
        if status != 200:
            return f"not checked (Orthanc {status})"
        values = np.frombuffer(raw, dtype=stored).astype(np.float64) * slope + intercept
        theirs.append(hashlib.sha256(values.astype(dtype).tobytes()).hexdigest())
    ours_hashes = sorted(hashlib.sha256(f.tobytes()).hexdigest() for f in mine)
    same = sum(a == b for a, b in zip(ours_hashes, sorted(theirs), strict=False))
    return f"{same}/{len(ids)} frames identical (Orthanc stored value x {slope:g} + {intercept:g})"


# ---- report -------------------------------------------------------------------------------


def _f(v: float | None, digits: int = 2) -> str:
    if v is None or math.isnan(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def _rng(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if len(values) < 2:
        return ""
    return f" ({_f(min(values))} to {_f(max(values))})"


INGEST_LABELS = {
    "ours_default": "ours `medlabel ingest`, {w} decoder processes (default)",
    "ours_w1": "ours `medlabel ingest`, MEDLABEL_INGEST_WORKERS=1",
    "orthanc_c1": "Orthanc `POST /instances`, 1 client",
    "orthanc_c4": "Orthanc `POST /instances`, 4 clients",
    "bare_dcmread": "bare read + sha256 + `pydicom.dcmread`, 1 process",
    "bare_pixels": "bare read + sha256 + `dcmread` + `pixel_array` (reference)",
}


def ingest_table(res: IngestResults) -> str:
    best_orthanc = max(res.median("orthanc_c1"), res.median("orthanc_c4"))
    bare = res.median("bare_dcmread")
    lines = [
        "| ingest | runs | files/s (range) | MB/s | job files/s (range) | CPU ms/file "
        "| ÷ Orthanc best | ÷ bare dcmread | load1 (max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in INGEST_VARIANTS:
        runs = res.runs[v]
        if not runs:
            continue
        fps = res.median(v)
        mbps = statistics.median(r.nbytes / r.wall_s / 1e6 for r in runs)
        job = res.median(v, "job_files_per_s")
        job_text = "-" if math.isnan(job) else f"{_f(job)}{_rng([r.job_files_per_s for r in runs])}"
        cpu = statistics.median(r.cpu_s * 1e3 / r.files for r in runs)
        label = INGEST_LABELS[v].format(w=res.default_workers)
        lines.append(
            f"| {label} | {len(runs)} | {_f(fps)}{_rng([r.files_per_s for r in runs])} "
            f"| {_f(mbps)} | {job_text} | {_f(cpu)} | {fps / best_orthanc:.2f} "
            f"| {fps / bare:.2f} | {max(r.load1 for r in runs):.2f} |"
        )
    return "\n".join(lines)


def serving_table(phases: Sequence[Phase]) -> str:
    by_key = {(p.system, p.test, p.clients): p for p in phases}
    lines = [
        "| system | test | clients | req/s (range) | p50 ms | p95 ms | p99 ms | errors "
        "| KB/resp | server CPU ms/req | ours ÷ Orthanc req/s | load1 (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        r = p.pooled
        other = by_key.get(("orthanc", p.test, p.clients))
        ratio = (
            f"{r.rps / other.pooled.rps:.2f}" if p.system == "ours" and other is not None else ""
        )
        kb = r.bytes_in / r.ok / 1024 if r.ok else float("nan")
        lines.append(
            f"| {p.system} | {p.test} | {p.clients} | {_f(r.rps)}{_rng([x.rps for x in p.rounds])} "
            f"| {_f(r.p50_ms)} | {_f(r.p95_ms)} | {_f(r.p99_ms)} | {r.errors} | {_f(kb, 1)} "
            f"| {_f(p.cpu_ms_per_req)} | {ratio} | {max(x.load1_before for x in p.rounds):.2f} |"
        )
    return "\n".join(lines)


def series_table(times: Sequence[SeriesTimes]) -> str:
    base = times[0].median
    lines = [
        "| whole series | repeats | median ms (range) | MB/s | server CPU s | client CPU s "
        "| ÷ ours batch time | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in times:
        per = t.bytes_in / max(1, len(t.seconds))
        lines.append(
            f"| {t.label} | {len(t.seconds)} | {_f(t.median * 1e3)}"
            f"{_rng([s * 1e3 for s in t.seconds])} | {_f(per / t.median / 1e6)} "
            f"| {_f(statistics.median(t.cpu_s))} | {_f(statistics.median(t.client_cpu_s))} "
            f"| {t.median / base:.2f} | {t.errors} |"
        )
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summary_line(
    ingest: IngestResults | None,
    phases: Sequence[Phase],
    series: Sequence[SeriesTimes],
    errors: int,
) -> tuple[str, dict[str, Any]]:
    parts, targets = [], {}
    if ingest is not None:
        ours, job = ingest.median("ours_default"), ingest.median("ours_default", "job_files_per_s")
        o1, o4 = ingest.median("orthanc_c1"), ingest.median("orthanc_c4")
        best, bare = max(o1, o4), ingest.median("bare_dcmread")
        ok = ours >= INGEST_TARGET * best
        targets["ingest_2x_orthanc"] = ok
        parts.append(
            f"ingest ours {ours:.0f} files/s (job {job:.0f}, 1 worker "
            f"{ingest.median('ours_w1'):.0f}) vs Orthanc c1 {o1:.0f} c4 {o4:.0f} = "
            f"{ours / best:.2f}x [{verdict(ok)} >={INGEST_TARGET:g}x]; "
            f"vs bare dcmread {bare:.0f} = {ours / bare:.2f}x"
        )
    by_key = {(p.system, p.test, p.clients): p.pooled for p in phases}
    for test, target in (("raw", RAW_TARGET), ("png", PNG_TARGET)):
        items = []
        for c in sorted({p.clients for p in phases}):
            mine, theirs = by_key.get(("ours", test, c)), by_key.get(("orthanc", test, c))
            if mine is None or theirs is None:
                continue
            ratio = mine.rps / theirs.rps
            ok = ratio >= target
            extra = ""
            if test == "raw":
                ok = ok and mine.p95_ms < RAW_P95_MS
                extra = f" p95 {mine.p95_ms:.1f}ms"
            targets[f"{test}_c{c}"] = ok
            items.append(
                f"c{c} {mine.rps:.0f}/{theirs.rps:.0f} req/s = {ratio:.2f}x{extra} [{verdict(ok)}]"
            )
        if items:
            need = f">={target:g}x" + (f", p95<{RAW_P95_MS:g}ms" if test == "raw" else "")
            parts.append(f"{test} ({need}) " + ", ".join(items))
    if series:
        mine, theirs = series[0].median, series[1].median
        ok = theirs / mine >= SERIES_TARGET
        targets["series_3x"] = ok
        parts.append(
            f"series ours batch {mine * 1e3:.0f} ms vs Orthanc 8 clients {theirs * 1e3:.0f} ms "
            f"= {theirs / mine:.2f}x faster [{verdict(ok)} >={SERIES_TARGET:g}x]"
        )
    return f"SUMMARY bench_imaging {' | '.join(parts)} | errors={errors}", targets


# ---- main ---------------------------------------------------------------------------------


def parse_list(text: str, what: str, lo: int, hi: int) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: numbers like 1,8, not {text!r}") from None
    if not values or any(not lo <= v <= hi for v in values):
        raise argparse.ArgumentTypeError(f"{what}: {lo} to {hi} each")
    return values


def parse_parts(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    if not values or any(v not in PARTS for v in values):
        raise argparse.ArgumentTypeError(f"--parts: any of {','.join(PARTS)}")
    return values


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="medlabel-bench-imaging-"))
    try:
        yield root
    finally:
        if keep:
            log(f"  kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--series", type=Path, default=DEFAULT_SERIES, help="folder of .dcm slices")
    ap.add_argument("--parts", type=parse_parts, default=list(PARTS), help="ingest,serve,series")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (ingest, serve)")
    ap.add_argument("--clients", type=lambda t: parse_list(t, "--clients", 1, 64), default=[1, 8])
    ap.add_argument("--requests", type=int, default=1000, help="cap per serving phase and round")
    ap.add_argument("--seconds", type=float, default=10.0, help="time cap per serving phase")
    ap.add_argument("--warmup", type=int, default=5, help="untimed requests per client")
    ap.add_argument("--series-repeats", type=int, default=5, help="whole-series repetitions")
    ap.add_argument("--ingest-seconds", type=float, default=120.0, help="cap per Orthanc ingest")
    ap.add_argument("--orthanc", default=shutil.which("Orthanc") or "/usr/sbin/Orthanc")
    ap.add_argument("--no-dicomweb", action="store_true", help="load no Orthanc plugin")
    ap.add_argument("--netns", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--json", type=Path, help="write all figures and conditions here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.series_repeats <= 50:
        ap.error("--rounds 1 to 20, --series-repeats 1 to 50")
    if not Path(args.orthanc).is_file():
        ap.error(f"no Orthanc binary at {args.orthanc}: run bench-peers/setup.sh (root)")
    isolation = enter_netns(args.netns, argv)
    signal.signal(signal.SIGTERM, _raise_exit)

    before = conditions()
    log(
        f"# bench_imaging {before['time']}: nproc {before['nproc']} ({before['cpu_model']}), "
        f"load average {' '.join(map(str, before['loadavg']))}, CPU pressure some avg10 "
        f"{before['cpu_pressure_some_avg10']}%, network: {isolation}"
    )
    series = Series.load(args.series)
    log(f"  series {series.folder}: {series.n} files, {series.nbytes / 1e6:.1f} MB")
    code = code_version()
    log(
        f"  code: commit {code.get('commit', '?')} + {code.get('src_changed_files', '?')} "
        f"changed/untracked under src/, src digest {code['src_sha256']}"
    )
    info: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, sys.argv[0], *argv]),
        "conditions_before": before,
        "versions": versions(),
        "code": code,
        "isolation": isolation,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "series": {"folder": str(series.folder), "files": series.n, "bytes": series.nbytes},
    }
    ingest: IngestResults | None = None
    phases: list[Phase] = []
    times: list[SeriesTimes] = []
    with workspace(args.keep) as root, contextlib.ExitStack() as stack:
        orthanc_dir = root / "orthanc"
        orthanc_dir.mkdir()
        orthanc = stack.enter_context(Orthanc(orthanc_dir, args.orthanc, not args.no_dicomweb))
        orthanc.start()
        info["orthanc"] = {
            "version": orthanc.info["system"].get("Version"),
            "plugins": orthanc.get_json("/plugins"),
        }
        log(f"  Orthanc {info['orthanc']['version']} pid {orthanc.proc.pid} port {orthanc.port}")  # type: ignore[union-attr]
        if "ingest" in args.parts:
            ingest = measure_ingest(root, series, orthanc, args.rounds, args.ingest_seconds)
            server = ingest.serving_server
        else:
            orthanc_ingest(orthanc, series, 4, args.ingest_seconds)
            (root / "serve").mkdir()
            server = ours_ingest(root / "serve", series, None)[1]
        if server is None:
            raise BenchError("no ingested data directory to serve")
        stack.enter_context(server)
        server.start()
        token = server.api_token()
        ours, item = ours_side(server, token)
        theirs = orthanc_side(orthanc)
        frame_bytes = int(item["pixel"]["rows"]) * int(item["pixel"]["columns"]) * 2
        info["response_bytes"] = {
            "ours": preflight(ours, frame_bytes),
            "orthanc": preflight(theirs, frame_bytes),
        }
        ids = [r.path.split("/")[2] for r in theirs.tests["raw"]]
        info["pixel_check"] = pixel_check(ours, orthanc, ids, item["pixel"])
        log(f"  ours pid {server.proc.pid} port {server.port}, item {item['item_id']}")  # type: ignore[union-attr]
        log(f"  pixels: {info['pixel_check']}")
        if "serve" in args.parts:
            phases = measure_serving(
                [ours, theirs],
                clients=args.clients,
                rounds=args.rounds,
                max_requests=args.requests,
                seconds=args.seconds,
                warmup=args.warmup,
            )
        if "series" in args.parts:
            times = measure_series(ours, theirs, args.series_repeats, max(60.0, args.seconds))
        info["server_log_tail"] = server.log_tail(5)

    info["conditions_after"] = conditions()
    errors = sum(p.pooled.errors for p in phases) + sum(t.errors for t in times)
    if ingest is not None:
        errors += sum(r.errors for runs in ingest.runs.values() for r in runs)
        print(f"\n### Ingest ({series.n} files, {series.nbytes / 1e6:.1f} MB)\n")
        print(ingest_table(ingest))
        info["ingest"] = {
            "default_workers": ingest.default_workers,
            "runs": {v: [r.summary() for r in runs] for v, runs in ingest.runs.items()},
        }
    if phases:
        print(f"\n### Slice serving (W {WIDTH} / L {CENTER}, round-robin over the series)\n")
        print(serving_table(phases))
        info["serving"] = [p.summary() for p in phases]
    if times:
        print("\n### Whole series to the viewer\n")
        print(series_table(times))
        info["series_times"] = [t.summary() for t in times]
    print(f"\npixels: {info['pixel_check']}")
    line, targets = summary_line(ingest, phases, times, errors)
    print(line)
    info["summary"], info["targets"] = line, targets
    if args.json:
        args.json.write_text(json.dumps(info, indent=1, default=str) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
