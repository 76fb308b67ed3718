#!/usr/bin/env python3
"""Annotation saves and mask transport of a real ``medlabel serve``, against Label Studio.

One command measures, on the same machine and in the same run, with ours and Label Studio's
phases interleaved round by round (the order flips every round) so that drifts in machine
load hit both:

* **shape saves**: ``PUT /api/annotation-sets/{id}/annotations`` with a realistic document
  (3 boxes, 2 polygons of 24 points, 2 landmarks, nodule attributes; ~2 KB) from 1 and 8
  clients. Each client is its own annotator with its own set on the CT volume and chains
  ``If-Match`` from the previous save's ETag, as the viewer does; every save is a new
  revision (201) validated completely against the label schema;
* Label Studio's equivalent: ``POST /api/tasks/{id}/annotations/`` with the same geometry
  (3 ``rectanglelabels``, 2 ``polygonlabels`` of 24 points, 2 ``keypointlabels``), each to a
  fresh task, under ``label-studio start`` (Django's threaded dev server) and under gunicorn
  (2 sync workers by default); the ratio is taken against the faster of the two;
* the floors: ``GET /healthz`` (ours) and ``GET /health`` (Label Studio), and our bulk read
  ``GET /api/items/{id}/annotations`` (every set of the item with its measurements);
* **mask saves**: one brushed slice of the 512x512x300 labelmap per request
  (``PUT .../masks/{id}?start=k&count=1&encoding=zlib``, chained like the shapes; every
  slice has new content), from 1 and 8 clients;
* **full labelmap**: upload of a whole (300, 512, 512) uint8 labelmap (~79 M voxels, zlib) and
  its load (``GET .../masks/{id}``, zlib and raw), each timed and with the server's peak
  resident memory growth (``VmHWM`` after resetting it through ``/proc/PID/clear_refs``, and
  a ``VmRSS`` sampler as a cross-check); the load is decoded and compared with what was sent.

Server CPU time per request (``/proc``, the server's process group) is reported for every
phase. A final ``SUMMARY`` line gives the ratios and PASS/FAIL per target of the issue. Nothing
is asserted on timing: the exit status is 1 only when a request failed or nothing could be
measured (2 on a setup failure).

    .venv/bin/python bench/bench_annotations.py --rounds 2 --json /tmp/annotations.json
    .venv/bin/python bench/bench_annotations.py --quick          # ~2 min, LS under gunicorn only
    .venv/bin/python bench/bench_annotations.py --ls-modes none  # ours only

Ours is ``medlabel serve`` from this virtual environment on a fresh data directory (seeded with
``medlabel demo``, the 300-slice CT ingested with ``medlabel ingest``; the series comes from
``python scripts/make_demo_data.py --bench-slices 300``). Label Studio runs from its own
virtual environment (``--ls-venv``, default ``${TMPDIR:-/tmp}/ls-venv``) on a fresh
``LABEL_STUDIO_BASE_DATA_DIR`` with SQLite, bound to 127.0.0.1, with Sentry, analytics and the
PyPI version check turned off; when that environment is missing the peer is skipped with a
message. As root the whole run re-executes itself in a private network namespace (``unshare
-n``, only ``lo`` up) so that nothing can leave the machine; ``--netns off`` disables that
(and it is off when PostgreSQL, which lives outside the namespace, is measured).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import http.cookies
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench_api import (
    DEFAULT_PG_URL,
    BenchError,
    Server,
    Skip,
    conditions,
    free_port,
    medlabel_command,
    pg_scratch_database,
    versions,
)
from bench_imaging import code_version, netns_usable, reexec_in_netns
from loadgen import Request, Result, Target, merge, run

HOST = "127.0.0.1"
PROJECT = "demo"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERIES = ROOT / ".cache" / "bench-ct-300"
DEFAULT_LS_VENV = Path(tempfile.gettempdir()) / "ls-venv"
NETNS_ENV = "BENCH_ANNOTATIONS_IN_NETNS"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DATABASES = ("sqlite", "postgresql")
LS_MODES = ("runserver", "gunicorn")
LS_USER = "bench@example.com"
LS_INSTALL = "python3 -m venv /tmp/ls-venv && /tmp/ls-venv/bin/pip install label-studio gunicorn"

# Targets of the issue (no assertion anywhere: they are reported as PASS/FAIL).
SAVE_RATIO_TARGET = 10.0  # our shape saves/s over Label Studio's faster mode, at 8 clients
SAVE_P95_MS = 50.0  # our shape save p95 at 8 clients
SLICE_P95_MS = 30.0  # one brushed slice saved, p95 (1 client)
VOLUME_S = 1.0  # full labelmap upload, and load, each
VOLUME_MEM_X = 3.0  # server peak RSS growth over the labelmap's size

# The demo schema's classes used by the documents (``medlabel demo``).
NODULE, FRACTURE, TUMOUR, CARINA = "lung_nodule", "fracture", "tumour_tissue", "carina"
LIVER = "liver"
NEEDED_KINDS = {
    NODULE: {"box", "polygon", "mask"},
    FRACTURE: {"box"},
    TUMOUR: {"polygon", "mask"},
    CARINA: {"point"},
}
NODULE_ATTRIBUTES = {"texture": "solid", "diameter": 12.5, "calcified": False}
SLICE_MASK = "brush"  # mask id of the per-slice saves (one per annotator's set)
VOLUME_MASK = "labelmap"  # mask id of the full upload (the admin's set)

LS_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="bbox" toName="image">
    <Label value="Lung nodule"/><Label value="Fracture"/>
  </RectangleLabels>
  <PolygonLabels name="poly" toName="image">
    <Label value="Lung nodule"/><Label value="Tumour tissue"/>
  </PolygonLabels>
  <KeyPointLabels name="landmark" toName="image">
    <Label value="Carina"/>
  </KeyPointLabels>
  <BrushLabels name="brush" toName="image">
    <Label value="Lung nodule"/><Label value="Liver"/><Label value="Tumour tissue"/>
  </BrushLabels>
</View>"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# ---- HTTP and /proc helpers -------------------------------------------------------------


def call(
    port: int,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh connection to 127.0.0.1:port."""
    h = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        h["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.msg, r.read()
    finally:
        conn.close()


def call_json(port: int, method: str, path: str, expect: Sequence[int], **kw: Any) -> Any:
    status, _, data = call(port, method, path, **kw)
    if status not in expect:
        raise BenchError(f"{method} {path}: {status} {data[:400]!r}")
    return json.loads(data) if data else None


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in process group ``pgid`` plus the reaped children of
    its leader (the servers run in their own session, so the group is the server: uvicorn,
    or gunicorn's master and workers)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            f = _stat_fields(int(entry.name))
        except (OSError, IndexError):
            continue
        if int(f[2]) != pgid:  # field 5, pgrp
            continue
        ticks += int(f[11]) + int(f[12])
        if int(entry.name) == pgid:
            ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    if not m:
        raise BenchError(f"no {key} in /proc/{pid}/status")
    return int(m.group(1))


class MemoryProbe:
    """Peak resident memory of a process during a block: ``VmHWM`` after resetting it
    (``echo 5 > /proc/PID/clear_refs``), and the highest ``VmRSS`` seen by a sampler thread
    (which can miss a short peak; it is the fallback when the reset is not permitted)."""

    def __init__(self, pid: int, interval_s: float = 0.003) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.rss_before_kib = 0
        self.hwm_kib: int | None = None
        self.sampled_peak_kib = 0
        self.rss_after_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.reset_ok = False

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, BenchError):
                self.sampled_peak_kib = max(self.sampled_peak_kib, _status_kib(self.pid, "VmRSS"))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemoryProbe:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.rss_before_kib = _status_kib(self.pid, "VmRSS")
        self.sampled_peak_kib = self.rss_before_kib
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.rss_after_kib = _status_kib(self.pid, "VmRSS")
        if self.reset_ok:
            self.hwm_kib = _status_kib(self.pid, "VmHWM")

    @property
    def peak_kib(self) -> int:
        return max(self.hwm_kib or 0, self.sampled_peak_kib)

    @property
    def growth_bytes(self) -> int:
        return (self.peak_kib - self.rss_before_kib) * 1024


# ---- the workloads ------------------------------------------------------------------------


def _r3(v: float) -> float:
    return round(v, 3)


def _ring(rng: random.Random, cx: float, cy: float, r: float, n: int = 24) -> list[list[float]]:
    """A star-shaped (so simple) ring of ``n`` vertices around (cx, cy)."""
    out = []
    for j in range(n):
        a = 2 * math.pi * j / n
        rr = r * (1 + 0.15 * rng.random())
        out.append([_r3(cx + rr * math.cos(a)), _r3(cy + rr * math.sin(a))])
    return out


def base_document(seed: int, shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """3 boxes (2 nodules with attributes, 1 fracture), 2 polygons of 24 points (tumour
    tissue, nodule) and 2 carina landmarks on a (columns, rows, slices) item."""
    columns, rows, slices = shape
    rng = random.Random(seed)
    anns: list[dict[str, Any]] = []
    for b, label in enumerate((NODULE, NODULE, FRACTURE)):
        x, y = rng.uniform(40, columns - 120), rng.uniform(40, rows - 120)
        w, h = rng.uniform(8, 60), rng.uniform(8, 60)
        anns.append(
            {
                "id": f"box-{b}",
                "kind": "box",
                "label": label,
                "slice": rng.randrange(slices),
                "min": [_r3(x), _r3(y)],
                "max": [_r3(x + w), _r3(y + h)],
                "attributes": dict(NODULE_ATTRIBUTES) if label == NODULE else {},
            }
        )
    for p, label in enumerate((TUMOUR, NODULE)):
        cx, cy = rng.uniform(100, columns - 100), rng.uniform(100, rows - 100)
        anns.append(
            {
                "id": f"polygon-{p}",
                "kind": "polygon",
                "label": label,
                "slice": rng.randrange(slices),
                "points": _ring(rng, cx, cy, rng.uniform(15, 60)),
                "holes": [],
                "attributes": dict(NODULE_ATTRIBUTES) if label == NODULE else {},
            }
        )
    for q in range(2):
        point = [rng.uniform(0, columns - 1), rng.uniform(0, rows - 1), rng.uniform(0, slices - 1)]
        anns.append(
            {
                "id": f"landmark-{q}",
                "kind": "point",
                "label": CARINA,
                "point": [_r3(v) for v in point],
                "attributes": {},
            }
        )
    return anns


def document_body(n: int, base: list[dict[str, Any]]) -> bytes:
    """The whole document as the viewer saves it after moving one shape a little; it differs
    from every other ``n`` (of one phase), so each save makes a new revision."""
    anns = json.loads(json.dumps(base))
    a = anns[n % len(anns)]
    d = _r3(0.01 * (n // len(anns) % 997 + 1))
    if a["kind"] == "box":
        a["min"] = [_r3(a["min"][0] + d), a["min"][1]]
        a["max"] = [_r3(a["max"][0] + d), a["max"][1]]
    elif a["kind"] == "polygon":
        a["points"] = [[_r3(x + d), y] for x, y in a["points"]]
    else:
        a["point"] = [_r3(a["point"][0] + d), *a["point"][1:]]
    body = {"annotations": anns, "duration_s": round(20 + n % 97 * 0.5, 1)}
    return json.dumps(body, separators=(",", ":")).encode()


def ls_body(n: int, shape: tuple[int, int, int]) -> bytes:
    """Label Studio's form of the same geometry (percent of the 512x512 image)."""
    columns, rows, _ = shape
    rng = random.Random(n)
    common = {
        "to_name": "image",
        "original_width": columns,
        "original_height": rows,
        "image_rotation": 0,
    }
    res: list[dict[str, Any]] = []
    for b, label in enumerate(("Lung nodule", "Lung nodule", "Fracture")):
        value = {
            "x": _r3(rng.uniform(5, 75)),
            "y": _r3(rng.uniform(5, 75)),
            "width": _r3(rng.uniform(2, 12)),
            "height": _r3(rng.uniform(2, 12)),
            "rotation": 0,
            "rectanglelabels": [label],
        }
        res.append(
            {
                **common,
                "id": f"r{n}x{b}",
                "from_name": "bbox",
                "type": "rectanglelabels",
                "value": value,
            }
        )
    for p, label in enumerate(("Tumour tissue", "Lung nodule")):
        pts = _ring(rng, rng.uniform(20, 80), rng.uniform(20, 80), rng.uniform(3, 12))
        value = {"points": pts, "closed": True, "polygonlabels": [label]}
        res.append(
            {
                **common,
                "id": f"p{n}x{p}",
                "from_name": "poly",
                "type": "polygonlabels",
                "value": value,
            }
        )
    for q in range(2):
        value = {
            "x": _r3(rng.uniform(5, 95)),
            "y": _r3(rng.uniform(5, 95)),
            "width": 0.5,
            "keypointlabels": ["Carina"],
        }
        res.append(
            {
                **common,
                "id": f"k{n}x{q}",
                "from_name": "landmark",
                "type": "keypointlabels",
                "value": value,
            }
        )
    body = {
        "result": res,
        "was_cancelled": False,
        "ground_truth": False,
        "lead_time": round(20 + n % 97 * 0.5, 1),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class SliceMaker:
    """zlib bodies of single brushed slices: a disk of nodule and a blob of tumour tissue,
    at a position that is different for every ``n`` (so no slice blob is ever reused)."""

    def __init__(self, rows: int, columns: int, nodule: int, tumour: int) -> None:
        self.rows, self.columns = rows, columns
        self.nodule, self.tumour = nodule, tumour
        self.margin = 60
        self.span_x, self.span_y = columns - 2 * self.margin, rows - 2 * self.margin
        self.disks = {}
        for r in range(10, 41):
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
            self.disks[r] = (xx * xx + yy * yy) <= r * r

    def plane(self, n: int) -> np.ndarray:
        a = np.zeros((self.rows, self.columns), dtype=np.uint8)
        cx = self.margin + n % self.span_x
        cy = self.margin + (n // self.span_x) % self.span_y
        r = 10 + n % 21
        disk = self.disks[r]
        a[cy - r : cy + r + 1, cx - r : cx + r + 1][disk] = self.nodule
        r2 = 10 + n % 31
        y2 = min(self.rows - r2 - 1, cy + 20)
        x2 = max(r2, cx - 25)
        a[y2 - r2 : y2 + r2 + 1, x2 - r2 : x2 + r2 + 1][self.disks[r2]] = self.tumour
        return a

    def body(self, n: int) -> bytes:
        return zlib.compress(self.plane(n).tobytes(), 6)


def make_labelmap(
    shape_kji: tuple[int, int, int], variant: int, values: dict[str, int]
) -> np.ndarray:
    """A whole-volume labelmap as an organ-segmentation model would send it: a liver-sized
    ellipsoid with an irregular outline over ~60 % of the slices, a tumour inside it and a
    few lung nodules; ``variant`` shifts everything so each upload has new content."""
    slices, rows, columns = shape_kji
    out = np.zeros(shape_kji, dtype=np.uint8)
    yy, xx = np.mgrid[0:rows, 0:columns].astype(np.float32)
    cx, cy, kc = columns * 0.58 + 2 * variant, rows * 0.55, slices * 0.5
    a, b, c = columns * 0.21, rows * 0.16, slices * 0.3
    theta = np.arctan2(yy - cy, xx - cx)
    rho2 = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2
    tumour_c = (cx + 0.3 * a, cy - 0.2 * b, kc + 0.1 * c)
    nodules = [
        (columns * 0.3 + 5 * variant, rows * 0.35, slices * 0.3, 9.0),
        (columns * 0.25, rows * 0.5 + 3 * variant, slices * 0.55, 6.0),
        (columns * 0.7, rows * 0.3, slices * 0.7 + variant, 4.0),
    ]
    for k in range(slices):
        dz = (k - kc) / c
        if abs(dz) < 1:
            s = 1 - dz * dz
            edge = s * (1 + 0.08 * np.sin(6 * theta + k / 15.0)) ** 2
            plane = out[k]
            plane[rho2 <= edge] = values[LIVER]
            tz = (k - tumour_c[2]) / 18.0
            if abs(tz) < 1:
                rt2 = (1 - tz * tz) * 22.0**2
                plane[(xx - tumour_c[0]) ** 2 + (yy - tumour_c[1]) ** 2 <= rt2] = values[TUMOUR]
        for nx, ny, nz, nr in nodules:
            dk = (k - nz) / nr  # nr in mm: ~1 mm slices, ~0.7 mm pixels
            if abs(dk) < 1:
                r2 = (1 - dk * dk) * (nr / 0.7) ** 2
                out[k][(xx - nx) ** 2 + (yy - ny) ** 2 <= r2] = values[NODULE]
    return out


# ---- chained saves (each client on its own set) -------------------------------------------

_STALE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
)


class Conn:
    """One keep-alive connection that also hands back the ETag (a reused connection closed
    by the server meanwhile is reopened once)."""

    def __init__(self, target: Target, timeout: float = 60.0) -> None:
        self.target = target
        self.timeout = timeout
        self.connects = 0
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str | None, bytes]:
        while True:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=self.timeout
                )
                self._reused = False
                self.connects += 1
            reused = self._reused
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except _STALE:
                self.close()
                if reused:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            if response.will_close:
                self.close()
            else:
                self._reused = True
            return response.status, response.getheader("ETag"), data


@dataclass
class Chain:
    """One annotator's own set; every save names the revision the previous one made."""

    username: str
    token: str
    set_id: int
    revision: int = 0
    conflicts: int = 0


ETAG_RE = re.compile(r'^(?:W/)?"v(\d+)"$')


def _tally(result: Result, key: str, ok: bool, ms: float, data: bytes) -> None:
    result.statuses[key] = result.statuses.get(key, 0) + 1
    if ok:
        result.ok += 1
        result.latencies_ms.append(ms)
        result.bytes_in += len(data)
    else:
        result.errors += 1
        if len(result.error_samples) < 3:
            result.error_samples.append(f"{key}: {data[:300].decode('utf-8', 'replace')}")


def save_once(conn: Conn, chain: Chain, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
    headers = {
        "Authorization": f"Bearer {chain.token}",
        "If-Match": f'"v{chain.revision}"',
        "Content-Type": ctype,
    }
    status, tag, data = conn.send("PUT", path.format(set_id=chain.set_id), body, headers)
    m = ETAG_RE.match(tag or "")
    if status in (200, 201) and m:
        chain.revision = int(m.group(1))
    elif status == 409:  # someone else moved the set on: take its revision and go on
        chain.conflicts += 1
        with contextlib.suppress(ValueError, KeyError, TypeError):
            chain.revision = int(json.loads(data)["current_revision"])
    return status, data


def run_chained(
    target: Target,
    chains: Sequence[Chain],
    pool: Sequence[tuple[str, bytes]],
    ctype: str,
    *,
    max_requests: int,
    max_seconds: float,
    warmup: int,
    label: str,
    timeout: float = 60.0,
) -> Result:
    """Like ``loadgen.run`` for saves: client ``i`` saves into ``chains[i]`` with the ETag
    of its previous save as ``If-Match``; request number ``n`` (warm-up first) sends
    ``pool[n]`` (a path template with ``{set_id}`` and the body). Only 201 (a new revision)
    counts as success. Bounded by ``max_requests`` and ``max_seconds``."""
    clients = len(chains)
    if len(pool) < max_requests + clients * warmup:
        raise ValueError("the body pool is smaller than the requests it must feed")
    tallies: list[Result] = []
    lock = threading.Lock()
    counters = {"warm": 0, "timed": 0}
    clock: dict[str, float] = {}
    finished: list[float] = []

    def start_clock() -> None:
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + max_seconds

    barrier = threading.Barrier(clients, action=start_clock)

    def take(kind: str) -> int | None:
        with lock:
            if kind == "timed" and counters["timed"] >= max_requests:
                return None
            counters[kind] += 1
            n = counters[kind] - 1
        return n if kind == "timed" else max_requests + n

    def client(index: int) -> None:
        chain = chains[index]
        conn = Conn(target, timeout=timeout)
        tally = Result(label=label, clients=1)
        try:
            for _ in range(warmup):
                n = take("warm")
                assert n is not None
                try:
                    status, _ = save_once(conn, chain, pool[n][0], pool[n][1], ctype)
                    tally.warmup_errors += status != 201
                except Exception:
                    tally.warmup_errors += 1
            try:
                barrier.wait(timeout=timeout + 60)
            except threading.BrokenBarrierError:
                return
            deadline = clock["deadline"]
            while True:
                if time.perf_counter() >= deadline:
                    tally.stopped_by = "time"
                    break
                n = take("timed")
                if n is None:
                    break
                t0 = time.perf_counter_ns()
                try:
                    status, data = save_once(conn, chain, pool[n][0], pool[n][1], ctype)
                    key = str(status)
                except Exception as exc:
                    status, data, key = -1, str(exc).encode(), type(exc).__name__
                _tally(tally, key, status == 201, (time.perf_counter_ns() - t0) / 1e6, data)
        finally:
            conn.close()
            tally.connects = conn.connects
            end = time.perf_counter()
            with lock:
                finished.append(end)
                tallies.append(tally)

    load1_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    threads = [
        threading.Thread(target=client, args=(i,), name=f"chain-{i}", daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    join_deadline = time.monotonic() + (warmup + 2) * timeout + max_seconds + 60
    for t in threads:
        t.join(max(0.0, join_deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        barrier.abort()
        raise BenchError("save clients did not finish in time")
    if "start" not in clock:
        raise BenchError("save clients never started together (barrier broken)")
    result = merge(tallies, label=label)
    result.clients = clients
    result.stopped_by = "time" if "time" in result.stopped_by else "requests"
    result.elapsed_s = max(finished) - clock["start"]
    result.client_cpu_s = time.process_time() - cpu0
    result.load1_before = load1_before
    result.load1_after = os.getloadavg()[0]
    return result


# ---- phases and their figures ---------------------------------------------------------------


@dataclass
class Phase:
    system: str  # e.g. "medlabel/sqlite", "label-studio/gunicorn"
    what: str  # healthz | shape_save | bulk_read | slice_save | ls_health | ls_save
    title: str
    clients: int
    rounds: list[Result] = field(default_factory=list)
    server_cpu_s: float = 0.0
    request_bytes: int = 0

    @property
    def pooled(self) -> Result:
        return merge(self.rounds, label=f"{self.system} {self.title}")

    @property
    def cpu_ms_per_req(self) -> float:
        ok = sum(r.ok for r in self.rounds)
        return self.server_cpu_s * 1e3 / ok if ok else float("nan")

    def summary(self) -> dict[str, Any]:
        out = {
            "system": self.system,
            "phase": self.what,
            "title": self.title,
            **self.pooled.summary(),
            "server_cpu_s": round(self.server_cpu_s, 4),
            "server_cpu_ms_per_req": round(self.cpu_ms_per_req, 3),
            "request_bytes": self.request_bytes,
            "rps_rounds": [round(r.rps, 2) for r in self.rounds],
            "p95_rounds": [round(r.p95_ms, 2) for r in self.rounds],
        }
        return out


class Phases:
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str, int], Phase] = {}

    def add(
        self,
        system: str,
        what: str,
        title: str,
        clients: int,
        res: Result,
        cpu_s: float,
        request_bytes: int = 0,
    ) -> None:
        key = (system, what, clients)
        phase = self.by_key.setdefault(key, Phase(system, what, title, clients))
        phase.rounds.append(res)
        phase.server_cpu_s += cpu_s
        phase.request_bytes = request_bytes
        errors = f", {res.errors} ERRORS {res.error_samples[:1]}" if res.errors else ""
        log(
            f"    {system} {title} c={clients}: {res.rps:.1f} req/s, p50 {res.p50_ms:.1f} "
            f"p95 {res.p95_ms:.1f} ms, server CPU {cpu_s * 1e3 / max(res.ok, 1):.2f} ms/req, "
            f"load1 {res.load1_before:.2f}{errors}"
        )

    def get(self, system: str, what: str, clients: int) -> Phase | None:
        return self.by_key.get((system, what, clients))

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.by_key.values())


@dataclass
class VolumeRun:
    system: str
    round: int
    op: str  # upload | load_zlib | load_raw
    seconds: float
    sent: int
    received: int
    volume_bytes: int
    server_cpu_s: float
    rss_before_kib: int
    peak_kib: int
    hwm_kib: int | None
    sampled_peak_kib: int
    rss_after_kib: int
    growth_bytes: int
    load1: float
    client_decode_s: float | None = None
    status: int = 0
    verified: bool | None = None

    @property
    def mem_x(self) -> float:
        return self.growth_bytes / self.volume_bytes

    def summary(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["seconds"] = round(self.seconds, 4)
        out["server_cpu_s"] = round(self.server_cpu_s, 4)
        out["mem_x"] = round(self.mem_x, 3)
        if self.client_decode_s is not None:
            out["client_decode_s"] = round(self.client_decode_s, 4)
        return out


# ---- our server -------------------------------------------------------------------------------


def login_token(port: int, username: str, password: str) -> str:
    """Log in (the one argon2 verification) and create a personal API token."""
    status, msg, data = call(
        port, "POST", "/api/auth/login", json_body={"username": username, "password": password}
    )
    if status != 200:
        raise BenchError(f"login of {username} failed: {status} {data[:300]!r}")
    csrf = json.loads(data)["csrf_token"]
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    for header in msg.get_all("Set-Cookie") or []:
        jar.load(header)
    cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
    out = call_json(
        port,
        "POST",
        "/api/me/tokens",
        (201,),
        json_body={"name": "bench-annotations", "expires_days": 1},
        headers={"Cookie": cookie, "X-CSRF-Token": csrf},
    )
    return str(out["token"])


class Ours:
    """``medlabel serve`` on a fresh data directory with the CT series and one annotator
    (own token, own set on the CT) per client."""

    def __init__(
        self, database: str, workdir: Path, database_url: str | None, workers: int = 1
    ) -> None:
        self.database = database
        self.workers = workers
        self.system = f"medlabel/{database}" + (f"/w{workers}" if workers > 1 else "")
        self.server = Server(workdir, database_url=database_url)
        if workers > 1:
            self.server.serve_args = ["--workers", str(workers)]
        self.info: dict[str, Any] = {}
        self.item_id = 0
        self.shape = (0, 0, 0)  # (columns, rows, slices)
        self.admin = ""
        self.chains: list[Chain] = []
        self.values: dict[str, int] = {}
        self.admin_chain: Chain | None = None
        self.counter = 0  # unique body numbers across the whole run

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def cpu(self) -> float:
        return group_cpu_seconds(self.pid)

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    def setup(self, series: Path, clients: int) -> None:
        t0 = time.monotonic()
        self.server.seed()
        cmd = [*medlabel_command(), "ingest", str(series), "--project", PROJECT]
        cmd += ["--data-dir", str(self.server.data_dir)]
        t1 = time.monotonic()
        done = subprocess.run(
            cmd, env=self.server.env(), capture_output=True, text=True, timeout=1800, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"medlabel ingest failed ({done.returncode}):\n{done.stderr[-2000:]}")
        self.info["ingest_s"] = round(time.monotonic() - t1, 2)
        self.server.start()
        self.admin = self.server.api_token()
        self._find_item()
        self._check_schema()
        for c in range(clients):
            self.chains.append(self._annotator(c))
        opened = call_json(
            self.port,
            "POST",
            f"/api/items/{self.item_id}/annotation-sets",
            (200, 201),
            json_body={},
            headers=self.auth(),
        )
        self.admin_chain = Chain("admin", self.admin, int(opened["id"]), int(opened["revision"]))
        self._first_saves()
        self.info["setup_s"] = round(time.monotonic() - t0, 2)
        self.info["server_pid"] = self.pid
        self.info["server_workers"] = self.workers
        log(
            f"  {self.system}: pid {self.pid} port {self.port}, item {self.item_id} "
            f"shape {self.shape}, {clients} annotators, ready after {self.info['setup_s']} s "
            f"(ingest {self.info['ingest_s']} s)"
        )

    def _find_item(self) -> None:
        page = call_json(
            self.port, "GET", f"/api/projects/{PROJECT}/items", (200,), headers=self.auth()
        )
        volumes = [it for it in page["items"] if it.get("kind") == "volume"]
        if not volumes:
            raise BenchError(f"no volume item after ingest: {json.dumps(page)[:300]}")
        self.item_id = int(volumes[0]["id"])
        item = call_json(
            self.port, "GET", f"/api/items/{self.item_id}", (200,), headers=self.auth()
        )
        geometry = item.get("geometry") or {}
        shape = geometry.get("shape")
        if not shape or len(shape) != 3:
            raise BenchError(f"item {self.item_id} has no 3D geometry: {json.dumps(item)[:300]}")
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))

    def _check_schema(self) -> None:
        schema = call_json(
            self.port, "GET", f"/api/projects/{PROJECT}/schema", (200,), headers=self.auth()
        )
        classes = {c["key"]: c for c in schema["classes"]}
        for key, kinds in NEEDED_KINDS.items():
            have = set(classes.get(key, {}).get("kinds", []))
            if not kinds <= have:
                raise BenchError(
                    f"the demo schema's class {key!r} allows {sorted(have)}, the bench needs "
                    f"{sorted(kinds)}: update NEEDED_KINDS/base_document to the new demo schema"
                )
        for key in (NODULE, TUMOUR, LIVER):
            if "mask" not in classes.get(key, {}).get("kinds", []):
                raise BenchError(f"the demo schema's class {key!r} no longer allows masks")
            self.values[key] = int(classes[key]["value"])
        self.info["schema_version"] = schema.get("version")

    def _annotator(self, c: int) -> Chain:
        username = f"bench-annotator-{c}"
        password = secrets.token_urlsafe(18)
        call_json(
            self.port,
            "POST",
            "/api/users",
            (201,),
            headers=self.auth(),
            json_body={"username": username, "password": password},
        )
        call_json(
            self.port,
            "PUT",
            f"/api/projects/{PROJECT}/members/{username}",
            (200,),
            headers=self.auth(),
            json_body={"role": "annotator"},
        )
        token = login_token(self.port, username, password)
        opened = call_json(
            self.port,
            "POST",
            f"/api/items/{self.item_id}/annotation-sets",
            (200, 201),
            json_body={},
            headers=self.auth(token),
        )
        return Chain(username, token, int(opened["id"]), int(opened["revision"]))

    def _first_saves(self) -> None:
        """One shape save and one brushed slice in every annotator's set, so that the bulk
        read sees the same amount of data in every phase."""
        conn = Conn(Target(HOST, self.port))
        try:
            shapes = self.shape_pool(len(self.chains))
            slices = self.slice_pool(len(self.chains))
            for i, chain in enumerate(self.chains):
                for pool, ctype in (
                    (shapes, "application/json"),
                    (slices, "application/octet-stream"),
                ):
                    status, data = save_once(conn, chain, pool[i][0], pool[i][1], ctype)
                    if status != 201:
                        raise BenchError(f"first save of {chain.username}: {status} {data[:300]!r}")
        finally:
            conn.close()

    def _numbers(self, count: int) -> range:
        start = self.counter
        self.counter += count
        return range(start, start + count)

    def shape_pool(self, count: int) -> list[tuple[str, bytes]]:
        path = "/api/annotation-sets/{set_id}/annotations"
        base = base_document(7, self.shape)
        return [(path, document_body(n, base)) for n in self._numbers(count)]

    def slice_pool(self, count: int) -> list[tuple[str, bytes]]:
        columns, rows, slices = self.shape
        maker = SliceMaker(rows, columns, self.values[NODULE], self.values[TUMOUR])
        out = []
        for n in self._numbers(count):
            path = (
                f"/api/annotation-sets/{{set_id}}/masks/{SLICE_MASK}"
                f"?start={n % slices}&count=1&encoding=zlib"
            )
            out.append((path, maker.body(n)))
        return out

    # -- phases --

    def measure_clients(self, phases: Phases, c: int, a: argparse.Namespace) -> None:
        target = Target(HOST, self.port)
        chains = self.chains[:c]
        cap, secs, warm = a.requests, a.seconds, a.warmup

        cpu0 = self.cpu()
        res = run(
            target,
            [Request(path="/healthz")],
            clients=c,
            max_requests=cap * 2,
            max_seconds=secs,
            warmup=warm,
            label="GET /healthz",
        )
        phases.add(self.system, "healthz", "GET /healthz", c, res, self.cpu() - cpu0)

        pool = self.shape_pool(cap + c * warm)
        cpu0 = self.cpu()
        res = run_chained(
            target,
            chains,
            pool,
            "application/json",
            max_requests=cap,
            max_seconds=secs,
            warmup=warm,
            label="PUT shapes",
        )
        phases.add(
            self.system,
            "shape_save",
            "PUT /api/annotation-sets/{id}/annotations",
            c,
            res,
            self.cpu() - cpu0,
            len(pool[0][1]),
        )

        path = f"/api/items/{self.item_id}/annotations"
        cpu0 = self.cpu()
        res = run(
            target,
            [Request(path=path, headers=tuple(self.auth().items()))],
            clients=c,
            max_requests=cap,
            max_seconds=secs,
            warmup=warm,
            label="GET bulk",
        )
        phases.add(
            self.system, "bulk_read", "GET /api/items/{id}/annotations", c, res, self.cpu() - cpu0
        )

        pool = self.slice_pool(cap + c * warm)
        cpu0 = self.cpu()
        res = run_chained(
            target,
            chains,
            pool,
            "application/octet-stream",
            max_requests=cap,
            max_seconds=secs,
            warmup=warm,
            label="PUT slice",
        )
        phases.add(
            self.system,
            "slice_save",
            "PUT .../masks/{id}?start=k&count=1 (zlib)",
            c,
            res,
            self.cpu() - cpu0,
            len(pool[0][1]),
        )

    def measure_volume(self, round_no: int) -> list[VolumeRun]:
        """Upload a whole labelmap (new content every round), then load it as zlib and raw."""
        assert self.admin_chain is not None
        columns, rows, slices = self.shape
        volume = make_labelmap((slices, rows, columns), round_no, self.values)
        body = zlib.compress(volume.tobytes(), 6)
        nbytes = volume.nbytes
        runs: list[VolumeRun] = []
        chain = self.admin_chain
        base = f"/api/annotation-sets/{chain.set_id}/masks/{VOLUME_MASK}"

        def timed(
            op: str, method: str, path: str, data: bytes | None, headers: dict[str, str]
        ) -> tuple[VolumeRun, http.client.HTTPMessage, bytes]:
            load1 = os.getloadavg()[0]
            cpu0 = self.cpu()
            with MemoryProbe(self.pid) as probe:
                t0 = time.perf_counter()
                status, msg, out = call(
                    self.port, method, path, body=data, headers=headers, timeout=300
                )
                seconds = time.perf_counter() - t0
            vr = VolumeRun(
                self.system,
                round_no,
                op,
                seconds,
                len(data or b""),
                len(out),
                nbytes,
                self.cpu() - cpu0,
                probe.rss_before_kib,
                probe.peak_kib,
                probe.hwm_kib,
                probe.sampled_peak_kib,
                probe.rss_after_kib,
                probe.growth_bytes,
                load1,
                status=status,
            )
            return vr, msg, out

        headers = {
            **self.auth(),
            "If-Match": f'"v{chain.revision}"',
            "Content-Type": "application/octet-stream",
        }
        vr, msg, out = timed("upload", "PUT", f"{base}?encoding=zlib", body, headers)
        if vr.status != 201:
            raise BenchError(f"labelmap upload: {vr.status} {out[:300]!r}")
        m = ETAG_RE.match(msg.get("ETag") or "")
        chain.revision = int(m.group(1)) if m else chain.revision + 1
        runs.append(vr)
        del body
        for op, query in (("load_zlib", ""), ("load_raw", "?encoding=raw")):
            vr, msg, out = timed(op, "GET", base + query, None, self.auth())
            if vr.status != 200:
                raise BenchError(f"labelmap {op}: {vr.status} {out[:300]!r}")
            t0 = time.perf_counter()
            raw = zlib.decompress(out) if op == "load_zlib" else out
            got = np.frombuffer(raw, dtype=np.uint8)
            vr.client_decode_s = time.perf_counter() - t0
            shape_header = msg.get("X-Mask-Shape", "")
            vr.verified = shape_header == f"{slices},{rows},{columns}" and bool(
                np.array_equal(got, volume.reshape(-1))
            )
            if not vr.verified:
                raise BenchError(
                    f"labelmap {op}: what came back differs (X-Mask-Shape "
                    f"{shape_header!r}, {got.size} voxels)"
                )
            runs.append(vr)
        for vr in runs:
            log(
                f"    {self.system} labelmap {vr.op} r{round_no + 1}: {vr.seconds:.3f} s, "
                f"{vr.sent / 1e6:.2f} MB up / {vr.received / 1e6:.2f} MB down, server CPU "
                f"{vr.server_cpu_s:.2f} s, peak RSS +{vr.growth_bytes / 1e6:.0f} MB "
                f"({vr.mem_x:.2f}x the {nbytes / 1e6:.1f} MB volume)"
            )
        return runs


# ---- Label Studio -------------------------------------------------------------------------------


def ls_missing(venv: Path, modes: Sequence[str]) -> str | None:
    if not (venv / "bin" / "label-studio").is_file():
        return f"no {venv}/bin/label-studio; create it with: {LS_INSTALL}"
    if "gunicorn" in modes and not (venv / "bin" / "gunicorn").is_file():
        return f"no {venv}/bin/gunicorn; install it with: {venv}/bin/pip install gunicorn"
    return None


class LabelStudio:
    """Label Studio from its own venv on a fresh data directory (SQLite), one project with
    the equivalent labelling config and enough tasks for every annotation phase."""

    def __init__(self, venv: Path, workdir: Path, gunicorn_workers: int) -> None:
        self.venv = venv
        self.workdir = workdir
        self.gunicorn_workers = gunicorn_workers
        self.token = secrets.token_hex(20)
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.project = 0
        self.task_ids: list[int] = []
        self.used = 0
        self.info: dict[str, Any] = {}
        self.log_path = workdir / "label-studio.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDLABEL_", NETNS_ENV))}
        for k in ("USERNAME", "PASSWORD", "USER_TOKEN"):  # LS reads these bare names too
            env.pop(k, None)
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.workdir / "data"),
                "SENTRY_DSN": "",
                "FRONTEND_SENTRY_DSN": "",
                "LATEST_VERSION_CHECK": "false",
                "COLLECT_ANALYTICS": "false",
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def versions(self) -> dict[str, str]:
        code = (
            "import importlib.metadata as m, json\nout = {}\n"
            "for p in ('label-studio', 'django', 'djangorestframework', 'gunicorn'):\n"
            "    try:\n        out[p] = m.version(p)\n    except Exception:\n        pass\n"
            "print(json.dumps(out))"
        )
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        try:
            return dict(json.loads(done.stdout))
        except ValueError:
            return {"error": done.stderr[-300:]}

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = call(self.port, "GET", "/health", timeout=5)
                if status == 200:
                    return True
            time.sleep(0.3)
        return False

    def start(self, mode: str, timeout: float, first: bool = False) -> float:
        """Start in ``mode``; returns the seconds until ``/health`` answered."""
        self.port = free_port()
        ls = str(self.venv / "bin" / "label-studio")
        cmd = [
            ls,
            "start",
            "--no-browser",
            "--internal-host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "WARNING",
        ]
        env = self.env()
        if first:  # the first start migrates the database and creates the user and token
            cmd += [
                "--username",
                LS_USER,
                "--password",
                self.password,
                "--user-token",
                self.token,
                "--enable-legacy-api-token",
            ]
        if mode == "gunicorn":
            pkg = subprocess.run(
                [
                    str(self.venv / "bin" / "python"),
                    "-c",
                    "import label_studio, os; print(os.path.dirname(label_studio.__file__))",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            ).stdout.strip()
            env = {
                **env,
                "PYTHONPATH": pkg,
                "DJANGO_SETTINGS_MODULE": "label_studio.core.settings.label_studio",
            }
            cmd = [
                str(self.venv / "bin" / "gunicorn"),
                "-w",
                str(self.gunicorn_workers),
                "-b",
                f"{HOST}:{self.port}",
                "--timeout",
                "300",
                "--graceful-timeout",
                "10",
                "label_studio.core.wsgi:application",
            ]
        t0 = time.monotonic()
        self._spawn(cmd, env)
        if not self._wait(timeout):
            tail = self.log_tail()
            self.stop()
            raise BenchError(f"Label Studio ({mode}) did not answer /health; log tail:\n{tail}")
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # our own session: the server's group
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # gunicorn workers left behind, if any
        self.proc = None

    def cleanup(self, keep: bool) -> None:
        cleanup_dir(self.workdir, keep)

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def cpu(self) -> float:
        assert self.proc is not None
        return group_cpu_seconds(self.proc.pid)

    def auth(self) -> tuple[tuple[str, str], ...]:
        return (("Authorization", f"Token {self.token}"),)

    def prepare(self, tasks: int, timeout: float) -> None:
        """First start (migrations, user, token), the project and the tasks; then stop."""
        self.info["versions"] = self.versions()
        self.info["startup_fresh_db_s"] = round(self.start("runserver", timeout, first=True), 1)
        headers = dict(self.auth())
        project = call_json(
            self.port,
            "POST",
            "/api/projects",
            (201,),
            headers=headers,
            json_body={"title": "bench-annotations", "label_config": LS_CONFIG},
        )
        self.project = int(project["id"])
        rows = [
            {"data": {"image": f"http://127.0.0.1:9/slices/{k}.png", "slice": k}}
            for k in range(tasks)
        ]  # never fetched
        call_json(
            self.port,
            "POST",
            f"/api/projects/{self.project}/import",
            (201,),
            headers=headers,
            json_body=rows,
            timeout=600,
        )
        page = 1
        while len(self.task_ids) < tasks:
            data = call_json(
                self.port,
                "GET",
                f"/api/tasks?project={self.project}&page={page}&page_size=1000&fields=task_only",
                (200,),
                headers=headers,
            )
            got = [int(t["id"]) for t in data.get("tasks", [])]
            if not got:
                break
            self.task_ids += got
            page += 1
        if len(self.task_ids) < tasks:
            raise BenchError(f"Label Studio lists {len(self.task_ids)} of {tasks} imported tasks")
        self.stop()
        log(
            f"  label-studio {self.info['versions'].get('label-studio', '?')}: fresh SQLite "
            f"ready after {self.info['startup_fresh_db_s']} s, project {self.project}, "
            f"{len(self.task_ids)} tasks"
        )

    def take(self, n: int) -> list[int]:
        if self.used + n > len(self.task_ids):
            raise BenchError("Label Studio ran out of fresh tasks; raise --ls-tasks")
        out = self.task_ids[self.used : self.used + n]
        self.used += n
        return out

    def measure(self, phases: Phases, mode: str, a: argparse.Namespace, shape: Any) -> None:
        system = f"label-studio/{mode}"
        target = Target(HOST, self.port)
        for c in a.clients:
            cpu0 = self.cpu()
            res = run(
                target,
                [Request(path="/health")],
                clients=c,
                max_requests=a.requests,
                max_seconds=a.seconds,
                warmup=a.warmup,
                label="GET /health",
            )
            phases.add(system, "ls_health", "GET /health", c, res, self.cpu() - cpu0)

            def posts(ids: list[int]) -> list[Request]:
                return [
                    Request(
                        "POST",
                        f"/api/tasks/{tid}/annotations/",
                        (*self.auth(), ("Content-Type", "application/json")),
                        ls_body(tid, shape),
                    )
                    for tid in ids
                ]

            if a.ls_warmup:  # untimed, on tasks of their own (each timed POST hits a fresh task)
                warm = posts(self.take(c * a.ls_warmup))
                run(
                    target,
                    warm,
                    clients=c,
                    max_requests=len(warm),
                    max_seconds=120,
                    warmup=0,
                    expect=(201,),
                    timeout=120,
                    label="POST annotations warm-up",
                )
            requests = posts(self.take(a.ls_requests))
            cpu0 = self.cpu()
            res = run(
                target,
                requests,
                clients=c,
                max_requests=a.ls_requests,
                max_seconds=a.ls_seconds,
                warmup=0,
                expect=(201,),
                timeout=120,
                label="POST annotations",
            )
            phases.add(
                system,
                "ls_save",
                "POST /api/tasks/{id}/annotations/",
                c,
                res,
                self.cpu() - cpu0,
                len(requests[0].body or b""),
            )


# ---- private network namespace ---------------------------------------------------------------


def enter_netns(mode: str, argv: Sequence[str], databases: Sequence[str]) -> str:
    """Re-execute this command inside ``unshare -n`` (only ``lo`` up) when asked or possible;
    returns ``"netns"`` or ``"none"``."""
    if os.environ.get(NETNS_ENV) == "1":
        return "netns"
    if mode == "off":
        return "none"
    if "postgresql" in databases:
        if mode == "on":
            raise SystemExit("--netns on cannot reach a PostgreSQL server outside the namespace")
        log("# PostgreSQL is measured: no private network namespace (Label Studio binds 127.0.0.1)")
        return "none"
    if not netns_usable():
        if mode == "on":
            raise SystemExit("--netns on: `unshare -n` (as root, with `ip`) is not available")
        log("# no private network namespace; both servers bind 127.0.0.1 only")
        return "none"
    reexec_in_netns(Path(__file__), argv, NETNS_ENV)


# ---- report -------------------------------------------------------------------------------------


def _f(v: float, digits: int = 2) -> str:
    if v is None or math.isnan(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def phase_table(phases: Phases) -> str:
    lines = [
        "| system | phase | clients | req/s (rounds) | p50 ms | p95 ms | p99 ms | errors "
        "| ÷ own health | server CPU ms/req | body B | load1 (max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        r = p.pooled
        floor_what = "healthz" if p.system.startswith("medlabel") else "ls_health"
        floor = phases.get(p.system, floor_what, p.clients)
        ratio = r.rps / floor.pooled.rps if floor else float("nan")
        rounds = " / ".join(_f(x.rps) for x in p.rounds)
        lines.append(
            f"| {p.system} | {p.title} | {p.clients} | {_f(r.rps)} ({rounds}) | {_f(r.p50_ms)} "
            f"| {_f(r.p95_ms)} | {_f(r.p99_ms)} | {r.errors} | {ratio:.3f} "
            f"| {_f(p.cpu_ms_per_req)} | {p.request_bytes or '-'} "
            f"| {max(x.load1_before for x in p.rounds):.2f} |"
        )
    return "\n".join(lines)


def volume_table(runs: Sequence[VolumeRun]) -> str:
    lines = [
        "| system | round | operation | seconds | MB sent | MB received | server CPU s "
        "| RSS before MB | peak RSS growth MB | ÷ volume bytes | client decode s | load1 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in runs:
        decode = "-" if v.client_decode_s is None else f"{v.client_decode_s:.3f}"
        lines.append(
            f"| {v.system} | {v.round + 1} | {v.op} | {v.seconds:.3f} | {v.sent / 1e6:.2f} "
            f"| {v.received / 1e6:.2f} | {v.server_cpu_s:.2f} | {v.rss_before_kib / 1024:.0f} "
            f"| {v.growth_bytes / 1e6:.0f} | {v.mem_x:.2f} | {decode} | {v.load1:.2f} |"
        )
    return "\n".join(lines)


@dataclass
class Verdict:
    key: str  # short name for the SUMMARY line
    name: str
    measured: float
    goal: str
    passed: bool | None  # None: could not be measured
    note: str = ""

    def text(self) -> str:
        if self.passed is None:
            return "info" if self.goal == "info" else "SKIP"
        return "PASS" if self.passed else "FAIL"


def verdicts(
    ours: Ours, phases: Phases, volumes: Sequence[VolumeRun], clients: Sequence[int]
) -> list[Verdict]:
    """The issue's targets at 8 clients (or the most clients measured) and for 1 client."""
    out: list[Verdict] = []
    system = ours.system
    hi, lo = (8 if 8 in clients else max(clients)), min(clients)
    save = phases.get(system, "shape_save", hi)
    ls = [p for p in phases if p.what == "ls_save" and p.clients == hi and p.pooled.ok]
    name = f"shape saves/s ÷ Label Studio's faster mode, {hi} clients"
    if save and ls:
        best = max(ls, key=lambda p: p.pooled.rps)
        ratio = save.pooled.rps / best.pooled.rps
        per_round = " / ".join(
            f"{a.rps / b.rps:.1f}" for a, b in zip(save.rounds, best.rounds, strict=False)
        )
        note = (
            f"{save.pooled.rps:.1f}/s vs {best.pooled.rps:.1f}/s ({best.system}); "
            f"per round {per_round}"
        )
        passed = ratio >= SAVE_RATIO_TARGET
        out.append(
            Verdict(f"save_ratio_c{hi}", name, ratio, f">= {SAVE_RATIO_TARGET:g}x", passed, note)
        )
        cpu = best.cpu_ms_per_req / save.cpu_ms_per_req
        note = f"{best.cpu_ms_per_req:.1f} ms vs {save.cpu_ms_per_req:.1f} ms per save"
        out.append(
            Verdict(
                f"save_cpu_ratio_c{hi}",
                f"server CPU per save, {best.system} ÷ ours ({hi} clients)",
                cpu,
                "info",
                None,
                note,
            )
        )
    else:
        out.append(
            Verdict(
                f"save_ratio_c{hi}",
                name,
                float("nan"),
                f">= {SAVE_RATIO_TARGET:g}x",
                None,
                "Label Studio not measured",
            )
        )
    if save:
        p95 = save.pooled.p95_ms
        out.append(
            Verdict(
                f"save_p95_c{hi}",
                f"shape save p95 ms, {hi} clients",
                p95,
                f"< {SAVE_P95_MS:g}",
                p95 < SAVE_P95_MS,
            )
        )
    one = phases.get(system, "slice_save", lo)
    if one:
        p95 = one.pooled.p95_ms
        out.append(
            Verdict(
                f"slice_p95_c{lo}",
                f"single-slice mask save p95 ms, {lo} client",
                p95,
                f"< {SLICE_P95_MS:g}",
                p95 < SLICE_P95_MS,
            )
        )
    mine = [v for v in volumes if v.system == system]
    for op, key, what in (
        ("upload", "upload_s", "labelmap upload s"),
        ("load_zlib", "load_s", "labelmap load s (zlib)"),
    ):
        runs = [v for v in mine if v.op == op]
        if runs:
            med = statistics.median(v.seconds for v in runs)
            worst = max(v.seconds for v in runs)
            out.append(
                Verdict(
                    key,
                    f"{what}, median of {len(runs)}",
                    med,
                    f"< {VOLUME_S:g}",
                    med < VOLUME_S,
                    f"worst {worst:.3f} s",
                )
            )
    for op, key, what in (
        ("upload", "upload_mem_x", "labelmap upload"),
        ("load_zlib", "load_mem_x", "labelmap load (zlib)"),
    ):
        runs = [v for v in mine if v.op == op]
        if runs:
            worst_x = max(v.mem_x for v in runs)
            out.append(
                Verdict(
                    key,
                    f"{what}: server peak RSS growth ÷ volume bytes, worst",
                    worst_x,
                    f"< {VOLUME_MEM_X:g}x",
                    worst_x < VOLUME_MEM_X,
                    f"{max(v.growth_bytes for v in runs) / 1e6:.0f} MB",
                )
            )
    return out


def verdict_table(system: str, vs: Sequence[Verdict]) -> str:
    lines = [f"| {system}: target | measured | goal | result | note |", "|---|---:|---|---|---|"]
    for v in vs:
        lines.append(f"| {v.name} | {_f(v.measured)} | {v.goal} | {v.text()} | {v.note} |")
    return "\n".join(lines)


def summary_line(
    ours_list: Sequence[Ours],
    phases: Phases,
    volumes: Sequence[VolumeRun],
    all_verdicts: dict[str, list[Verdict]],
    skipped: dict[str, str],
) -> str:
    parts = []
    errors = sum(p.pooled.errors for p in phases)
    for ours in ours_list:
        s = ours.system

        def rps(what: str, c: int, system: str = s) -> str:
            p = phases.get(system, what, c)
            return f"{p.pooled.rps:.0f}/s" if p else "-"

        def p95(what: str, c: int, system: str = s) -> str:
            p = phases.get(system, what, c)
            return f"{p.pooled.p95_ms:.1f}ms" if p else "-"

        items = [
            f"healthz c1={rps('healthz', 1)} c8={rps('healthz', 8)}",
            f"shape_save c1={rps('shape_save', 1)} c8={rps('shape_save', 8)} "
            f"p95 c8={p95('shape_save', 8)}",
            f"bulk_read c1={rps('bulk_read', 1)} c8={rps('bulk_read', 8)}",
            f"slice_save c1={rps('slice_save', 1)} p95 c1={p95('slice_save', 1)} "
            f"c8={rps('slice_save', 8)}",
        ]
        for op in ("upload", "load_zlib"):
            runs = [v for v in volumes if v.system == s and v.op == op]
            if runs:
                items.append(
                    f"labelmap {op} {statistics.median(v.seconds for v in runs):.2f}s "
                    f"mem {max(v.mem_x for v in runs):.2f}x"
                )
        verdict = " ".join(
            f"[{v.key}={_f(v.measured)} {v.text()}]" for v in all_verdicts.get(s, [])
        )
        parts.append(f"{s}: " + "; ".join(items) + f" {verdict}")
    for p in phases:
        if p.what == "ls_save":
            parts.append(
                f"{p.system} save c{p.clients}={p.pooled.rps:.1f}/s p95={p.pooled.p95_ms:.0f}ms"
            )
    for name, why in skipped.items():
        parts.append(f"{name}: skipped ({why.splitlines()[0][:160]})")
    return f"SUMMARY bench_annotations {' | '.join(parts)} | errors={errors}"


# ---- main ---------------------------------------------------------------------------------------


def parse_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [x.strip().lower() for x in text.split(",") if x.strip()]
        if values == ["none"]:
            return []
        aliases = {"pg": "postgresql", "postgres": "postgresql"}
        values = [aliases.get(v, v) for v in values]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)} (or none)")
        return list(dict.fromkeys(values))

    return parse


def parse_clients(text: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--clients wants numbers like 1,8, not {text!r}"
        ) from None
    if not values or any(not 1 <= v <= 32 for v in values):
        raise argparse.ArgumentTypeError("--clients: 1 to 32 each")
    return values


DEFAULTS: dict[str, Any] = {
    "rounds": 2,
    "requests": 1500,
    "seconds": 10.0,
    "warmup": 10,
    "ls_modes": list(LS_MODES),
    "ls_requests": 200,
    "ls_seconds": 15.0,
    "ls_warmup": 3,
}
QUICK: dict[str, Any] = {
    "rounds": 1,
    "requests": 300,
    "seconds": 4.0,
    "warmup": 3,
    "ls_modes": ["gunicorn"],
    "ls_requests": 60,
    "ls_seconds": 8.0,
    "ls_warmup": 2,
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1 round, small caps, Label Studio under gunicorn only (~2 min)",
    )
    ap.add_argument("--rounds", type=int, help="interleaved repetitions (default 2)")
    ap.add_argument("--clients", type=parse_clients, default=[1, 8], help="default 1,8")
    ap.add_argument(
        "--requests",
        type=int,
        help="cap per phase and round, ours and the health floors (default 1500)",
    )
    ap.add_argument("--seconds", type=float, help="time cap per phase and round, ours (default 10)")
    ap.add_argument("--warmup", type=int, help="untimed requests per client, ours (default 10)")
    ap.add_argument(
        "--databases",
        type=parse_list(DATABASES),
        default=["sqlite"],
        help="sqlite,postgresql (default sqlite)",
    )
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("MEDLABEL_BENCH_PG_URL", DEFAULT_PG_URL),
        help="administrative PostgreSQL URL (env MEDLABEL_BENCH_PG_URL)",
    )
    ap.add_argument(
        "--series",
        type=Path,
        default=DEFAULT_SERIES,
        help="the CT series to ingest (default .cache/bench-ct-300)",
    )
    ap.add_argument(
        "--volume-rounds",
        type=int,
        default=1,
        help="labelmap upload+load repetitions per round (default 1)",
    )
    ap.add_argument(
        "--ls-venv",
        type=Path,
        default=DEFAULT_LS_VENV,
        help=f"Label Studio's virtualenv (default {DEFAULT_LS_VENV})",
    )
    ap.add_argument(
        "--ls-modes",
        type=parse_list(LS_MODES),
        help="runserver,gunicorn (default both; 'none' skips Label Studio)",
    )
    ap.add_argument(
        "--ls-requests", type=int, help="annotation POSTs cap per phase and round (default 200)"
    )
    ap.add_argument(
        "--ls-seconds", type=float, help="time cap per Label Studio annotation phase (default 15)"
    )
    ap.add_argument("--ls-warmup", type=int, help="untimed POSTs per client (default 3)")
    ap.add_argument("--ls-gunicorn-workers", type=int, default=2)
    ap.add_argument("--ls-startup-timeout", type=float, default=420.0)
    ap.add_argument(
        "--netns",
        choices=("auto", "on", "off"),
        default="auto",
        help="private network namespace (as root; default auto)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="medlabel serve --workers N (default 1; with N > 1 the labelmap phase, whose "
        "memory probe watches one process, is skipped)",
    )
    ap.add_argument("--json", type=Path, help="write all figures and conditions here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (server logs)")
    return ap


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = build_parser()
    a = ap.parse_args(argv)
    for k, v in (QUICK if a.quick else DEFAULTS).items():  # what was not given explicitly
        if getattr(a, k) is None:
            setattr(a, k, v)
    checks = (
        (1 <= a.rounds <= 10, "--rounds: 1 to 10"),
        (1 <= a.requests <= 100_000, "--requests: 1 to 100000"),
        (1 <= a.ls_requests <= 10_000, "--ls-requests: 1 to 10000"),
        (0 < a.seconds <= 120, "--seconds: (0, 120]"),
        (0 < a.ls_seconds <= 300, "--ls-seconds: (0, 300]"),
        (0 <= a.warmup <= 100 and 0 <= a.ls_warmup <= 100, "--warmup/--ls-warmup: 0 to 100"),
        (0 <= a.volume_rounds <= 10, "--volume-rounds: 0 to 10"),
        (1 <= a.workers <= 8, "--workers: 1 to 8"),
        (1 <= a.ls_gunicorn_workers <= 16, "--ls-gunicorn-workers: 1 to 16"),
    )
    for ok, why in checks:
        if not ok:
            ap.error(why)
    if a.workers > 1:
        a.volume_rounds = 0
    return a


@dataclass
class Outcome:
    ours: list[Ours] = field(default_factory=list)
    phases: Phases = field(default_factory=Phases)
    volumes: list[VolumeRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def start_label_studio(
    a: argparse.Namespace, modes: Sequence[str], out: Outcome, info: dict[str, Any]
) -> LabelStudio | None:
    """A prepared Label Studio (stopped, ready to start in any mode), or None (said why)."""
    ls = LabelStudio(
        a.ls_venv, Path(tempfile.mkdtemp(prefix="medlabel-bench-ls-")), a.ls_gunicorn_workers
    )
    per_round = sum(a.ls_requests + c * a.ls_warmup for c in a.clients)
    try:
        ls.prepare(a.rounds * len(modes) * per_round + 100, a.ls_startup_timeout)
    except BenchError as exc:
        log(f"  label-studio: SKIPPED after a failed start: {exc}")
        out.skipped["label-studio"] = str(exc)
        ls.stop()
        ls.cleanup(keep=True)
        return None
    info["systems"]["label-studio"] = ls.info
    return ls


def measure_all(
    a: argparse.Namespace, stack: contextlib.ExitStack, out: Outcome, info: dict[str, Any]
) -> None:
    """Set up every server, then the interleaved rounds (the order flips every round)."""
    for database in a.databases:
        workdir = Path(tempfile.mkdtemp(prefix=f"medlabel-bench-ann-{database}-"))
        stack.callback(cleanup_dir, workdir, a.keep)
        try:
            url = None
            if database == "postgresql":
                url, pg_version = stack.enter_context(pg_scratch_database(a.pg_url))
                info["versions"]["postgresql_server"] = pg_version
            ours = Ours(database, workdir, url, a.workers)
            stack.callback(ours.server.stop)
            ours.setup(a.series, max(a.clients))
            out.ours.append(ours)
            info["systems"][ours.system] = ours.info
        except Skip as exc:
            out.skipped[database] = str(exc)
            log(f"  {database}: SKIPPED: {exc}")
    if not out.ours:
        raise BenchError("no database could be measured")
    ls = start_label_studio(a, a.ls_modes, out, info) if a.ls_modes else None
    if ls is not None:
        stack.callback(ls.cleanup, a.keep)
        stack.callback(ls.stop)
    shape = out.ours[0].shape

    def ours_block(ours: Ours, r: int) -> None:
        for c in a.clients:
            ours.measure_clients(out.phases, c, a)
        for v in range(a.volume_rounds):
            out.volumes.extend(ours.measure_volume(r * a.volume_rounds + v))

    def ls_block(ls: LabelStudio, mode: str) -> None:
        up = ls.start(mode, a.ls_startup_timeout)
        ls.info.setdefault("startup_s", {}).setdefault(mode, []).append(round(up, 1))
        try:
            ls.measure(out.phases, mode, a, shape)
        finally:
            ls.stop()

    for r in range(a.rounds):
        log(f"## round {r + 1}/{a.rounds}")
        blocks: list[Callable[[], None]] = [
            functools.partial(ours_block, ours, r) for ours in out.ours
        ]
        if ls is not None:
            blocks += [functools.partial(ls_block, ls, mode) for mode in a.ls_modes]
        for block in blocks if r % 2 == 0 else blocks[::-1]:
            block()
    for ours in out.ours:
        ours.info["annotator_conflicts"] = sum(ch.conflicts for ch in ours.chains)


def cleanup_dir(path: Path, keep: bool) -> None:
    if keep:
        log(f"  kept {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def report(a: argparse.Namespace, out: Outcome, info: dict[str, Any]) -> int:
    phases, volumes = out.phases, out.volumes
    info["conditions_after"] = conditions()
    info["skipped"] = out.skipped
    info["phases"] = [p.summary() for p in phases]
    info["labelmap"] = [v.summary() for v in volumes]
    all_verdicts = {o.system: verdicts(o, phases, volumes, a.clients) for o in out.ours}
    info["verdicts"] = {
        s: [
            {
                **v.__dict__,
                "measured": None if math.isnan(v.measured) else v.measured,
                "result": v.text(),
            }
            for v in vs
        ]
        for s, vs in all_verdicts.items()
    }
    print(phase_table(phases))
    print()
    print(volume_table(volumes))
    for s, vs in all_verdicts.items():
        print()
        print(verdict_table(s, vs))
    line = summary_line(out.ours, phases, volumes, all_verdicts, out.skipped)
    print()
    print(line)
    info["summary"] = line
    if a.json:
        a.json.write_text(json.dumps(info, indent=1, default=str) + "\n")
    errors = sum(p.pooled.errors for p in phases)
    return 1 if errors or not list(phases) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    isolation = enter_netns(a.netns, argv, a.databases)
    if not a.series.is_dir() or not any(a.series.iterdir()):
        log(
            f"no CT series in {a.series}; build it with `python3 scripts/fetch_data.py --tier "
            "demo && .venv/bin/python scripts/make_demo_data.py --bench-slices 300`"
        )
        return 2
    out = Outcome()
    if a.ls_modes:
        why = ls_missing(a.ls_venv, a.ls_modes)
        if why:
            log(f"# Label Studio SKIPPED: {why}")
            out.skipped["label-studio"] = why
            a.ls_modes = []
    before = conditions()
    info: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "conditions_before": before,
        "versions": versions(),
        "code": code_version(),
        "isolation": isolation,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "targets": {
            "shape_save_ratio_c8": SAVE_RATIO_TARGET,
            "shape_save_p95_ms_c8": SAVE_P95_MS,
            "slice_save_p95_ms_c1": SLICE_P95_MS,
            "labelmap_upload_s": VOLUME_S,
            "labelmap_load_s": VOLUME_S,
            "labelmap_mem_x": VOLUME_MEM_X,
        },
        "systems": {},
    }
    log(
        f"# bench_annotations {before['time']}: nproc {before['nproc']} ({before['cpu_model']}), "
        f"load average {' '.join(map(str, before['loadavg']))}, CPU pressure some avg10 "
        f"{before['cpu_pressure_some_avg10']}%, isolation {isolation}"
    )
    try:
        with contextlib.ExitStack() as stack:
            measure_all(a, stack, out, info)
    except BenchError as exc:
        log(f"FAILED: {exc} (rerun with --keep to look at the server logs)")
        return 2
    return report(a, out, info)


if __name__ == "__main__":
    sys.exit(main())
