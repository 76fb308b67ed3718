#!/usr/bin/env python3
"""Authenticated read API of a real ``medlabel serve``, as ratios to ``GET /healthz``.

For each database (SQLite, then PostgreSQL) this starts a fresh server from the same virtual
environment as this Python, on a free loopback port with a new temporary data directory, and
seeds it with ``medlabel demo`` (a site admin and the ``demo`` project with its 6-class label
schema). It logs in once, creates a personal API token (``POST /api/me/tokens``) and then
loads, with 1 and 8 clients (``bench/loadgen.py``):

* ``GET /healthz``: no authentication, no database; the framework floor and the baseline;
* ``GET /api/projects/demo``: bearer token check, project access, schema/guideline versions;
* ``GET /api/projects/demo/schema``: the same checks plus the current schema (6 classes).

Results are a markdown table with the ratio of each endpoint to ``/healthz`` measured in the
same run at the same client count, the server's CPU time per request (from
``/proc/PID/stat``), and a final ``SUMMARY`` line. Servers are always stopped, temporary
directories removed and the PostgreSQL database dropped.

    /tmp/v/bin/python bench/bench_api.py --requests 2000 --seconds 15
    /tmp/v/bin/python bench/bench_api.py --databases sqlite --clients 1,4,8 --json out.json

PostgreSQL: an administrative URL (default ``MEDLABEL_BENCH_PG_URL`` or
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) is used to create and drop a
``medlabel_bench_<random>`` database; when it cannot be reached, PostgreSQL is skipped with
a message. Server output (uvicorn logs every request) goes to a file in the temporary
directory, never to this console.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import http.cookies
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import Request, Result, Target, merge, run

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HOST = "127.0.0.1"
PROJECT = "demo"
DEMO_CLASSES = 6
DATABASES = ("sqlite", "postgresql")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str
    authenticated: bool


ENDPOINTS = (
    Endpoint("healthz", "/healthz", authenticated=False),
    Endpoint("project", f"/api/projects/{PROJECT}", authenticated=True),
    Endpoint("schema", f"/api/projects/{PROJECT}/schema", authenticated=True),
)
BASELINE = "healthz"


class BenchError(RuntimeError):
    pass


class Skip(Exception):
    """This database cannot be measured here (said why); the others still are."""


# ---- machine conditions -----------------------------------------------------------------


def cpu_pressure() -> str | None:
    """The ``some avg10`` CPU pressure (percent of time some task waited for a CPU)."""
    try:
        text = Path("/proc/pressure/cpu").read_text()
    except OSError:
        return None
    m = re.search(r"some avg10=([\d.]+)", text)
    return m.group(1) if m else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def conditions() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg": [round(x, 2) for x in load],
        "cpu_pressure_some_avg10": cpu_pressure(),
    }


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("medlabel", "fastapi", "starlette", "uvicorn", "sqlalchemy", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


# ---- PostgreSQL scratch database ----------------------------------------------------------


@contextlib.contextmanager
def pg_scratch_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """Create a fresh database next to ``admin_url``'s; yield (server URL, server version);
    drop it afterwards (``WITH (FORCE)``, so a lingering connection cannot keep it)."""
    try:
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url
    except ImportError as exc:
        raise Skip(f"psycopg/sqlalchemy not importable ({exc})") from exc
    url = make_url(admin_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"medlabel_bench_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise Skip(f"cannot connect to {url.render_as_string()}: {exc}".strip()) from exc
    try:
        server_version = str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.set(database=name).render_as_string(hide_password=False), server_version
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        admin.close()


# ---- the server under test --------------------------------------------------------------


def medlabel_command() -> list[str]:
    """``medlabel`` from the same environment as this interpreter."""
    script = Path(sys.executable).parent / "medlabel"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from medlabel.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _http(
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.msg, r.read()
    finally:
        conn.close()


@dataclass
class Server:
    """A ``medlabel serve`` subprocess on a fresh data directory (use as a context manager)."""

    workdir: Path
    database_url: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    password: str = ""
    serve_args: list[str] = field(default_factory=list)  # extra `medlabel serve` options

    def __post_init__(self) -> None:
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"

    def env(self) -> dict[str, str]:
        # Nothing from the caller's MEDLABEL_* may redirect the server (e.g. a DATABASE_URL).
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLABEL_")}
        env["MEDLABEL_DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            env["MEDLABEL_DATABASE_URL"] = self.database_url
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def seed(self) -> None:
        """``medlabel demo``: migrate, create the admin and the demo project; keep the password."""
        cmd = [*medlabel_command(), "demo", "--data-dir", str(self.data_dir)]
        done = subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"medlabel demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
        m = re.search(r"^\s*password:\s*(\S+)\s*$", done.stdout, re.MULTILINE)
        if not m:
            raise BenchError(f"no password in the output of medlabel demo:\n{done.stdout}")
        self.password = m.group(1)

    def start(self, ready_timeout: float = 120.0) -> None:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            cmd = [*medlabel_command(), "serve", "--data-dir", str(self.data_dir)]
            cmd += ["--host", HOST, "--port", str(self.port), *self.serve_args]
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us; we stop it in order
                )
            if self._wait_ready(ready_timeout):
                return
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                break
        raise BenchError(f"server did not become ready; log tail:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = _http(self.port, "GET", "/readyz", timeout=5)
                if status == 200:
                    return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def cpu_seconds(self) -> float:
        """utime + stime of the server process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def api_token(self) -> str:
        """Log in as the demo admin and create a personal API token."""
        status, msg, body = _http(
            self.port, "POST", "/api/auth/login", {"username": "admin", "password": self.password}
        )
        if status != 200:
            raise BenchError(f"login failed: {status} {body[:300]!r}")
        csrf = json.loads(body)["csrf_token"]
        jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        for header in msg.get_all("Set-Cookie") or []:
            jar.load(header)
        cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        status, _, body = _http(
            self.port,
            "POST",
            "/api/me/tokens",
            {"name": "bench", "expires_days": 1},
            {"Cookie": cookie, "X-CSRF-Token": csrf},
        )
        if status != 201:
            raise BenchError(f"token creation failed: {status} {body[:300]!r}")
        return str(json.loads(body)["token"])

    def check(self, token: str) -> dict[str, int]:
        """One request per endpoint: all answer 200 and the schema has the demo's classes."""
        sizes = {}
        auth = {"Authorization": f"Bearer {token}"}
        for ep in ENDPOINTS:
            status, _, body = _http(
                self.port, "GET", ep.path, headers=auth if ep.authenticated else {}
            )
            if status != 200:
                raise BenchError(f"GET {ep.path}: {status} {body[:300]!r}")
            sizes[ep.key] = len(body)
        status, _, body = _http(self.port, "GET", f"/api/projects/{PROJECT}/schema", headers=auth)
        classes = len(json.loads(body)["classes"])
        if classes != DEMO_CLASSES:
            raise BenchError(f"demo schema has {classes} classes, expected {DEMO_CLASSES}")
        return sizes


# ---- measuring ----------------------------------------------------------------------------


@dataclass
class Phase:
    database: str
    endpoint: Endpoint
    clients: int
    rounds: list[Result] = field(default_factory=list)
    server_cpu_s: float = 0.0

    @property
    def pooled(self) -> Result:
        return merge(self.rounds, label=f"{self.database} GET {self.endpoint.path}")

    def summary(self) -> dict[str, Any]:
        pooled = self.pooled
        out = {
            "database": self.database,
            "endpoint": self.endpoint.key,
            "path": self.endpoint.path,
            **pooled.summary(),
            "server_cpu_s": round(self.server_cpu_s, 4),
            "server_cpu_ms_per_req": round(self.server_cpu_ms_per_req, 4),
        }
        if len(self.rounds) > 1:
            out["rps_rounds"] = [round(r.rps, 2) for r in self.rounds]
        return out

    @property
    def server_cpu_ms_per_req(self) -> float:
        ok = sum(r.ok for r in self.rounds)
        return self.server_cpu_s * 1e3 / ok if ok else float("nan")


def measure(
    server: Server,
    database: str,
    token: str,
    *,
    clients: Sequence[int],
    rounds: int,
    max_requests: int,
    max_seconds: float,
    warmup: int,
) -> list[Phase]:
    target = Target(HOST, server.port)
    auth = (("Authorization", f"Bearer {token}"),)
    phases = {(c, ep.key): Phase(database, ep, c) for c in clients for ep in ENDPOINTS}
    # Rounds are interleaved so that slow drifts in machine load hit every endpoint alike.
    for r in range(rounds):
        for c in clients:
            for ep in ENDPOINTS:
                request = Request(path=ep.path, headers=auth if ep.authenticated else ())
                cpu0 = server.cpu_seconds()
                res = run(
                    target,
                    [request],
                    clients=c,
                    max_requests=max_requests,
                    max_seconds=max_seconds,
                    warmup=warmup,
                    label=f"{database} {ep.key}",
                )
                phase = phases[(c, ep.key)]
                phase.server_cpu_s += server.cpu_seconds() - cpu0
                phase.rounds.append(res)
                print(
                    f"  [{database} round {r + 1}/{rounds}] c={c} GET {ep.path}: "
                    f"{res.rps:.0f} req/s p50 {res.p50_ms:.2f} ms, {res.errors} errors, "
                    f"load1 {res.load1_before:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    return list(phases.values())


def _f(v: float, digits: int = 2) -> str:
    if math.isnan(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


TABLE_HEAD = (
    "| database | endpoint | clients | req/s | p50 ms | p95 ms | p99 ms | errors "
    "| req/s ÷ healthz | p50 ÷ healthz | server CPU ms/req | load1 (max) |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table(phases: Sequence[Phase]) -> str:
    base = {(p.database, p.clients): p.pooled for p in phases if p.endpoint.key == BASELINE}
    lines = [TABLE_HEAD]
    for p in phases:
        r, b = p.pooled, base[(p.database, p.clients)]
        rps = r.rps
        if len(p.rounds) > 1:
            lo, hi = min(x.rps for x in p.rounds), max(x.rps for x in p.rounds)
            rps_text = f"{_f(rps)} ({_f(lo)} to {_f(hi)})"
        else:
            rps_text = _f(rps)
        lines.append(
            f"| {p.database} | GET {p.endpoint.path} | {p.clients} | {rps_text} "
            f"| {_f(r.p50_ms)} | {_f(r.p95_ms)} | {_f(r.p99_ms)} | {r.errors} "
            f"| {rps / b.rps:.2f} | {r.p50_ms / b.p50_ms:.1f} "
            f"| {_f(p.server_cpu_ms_per_req)} | {max(x.load1_before for x in p.rounds):.2f} |"
        )
    return "\n".join(lines)


def summary_line(phases: Sequence[Phase], skipped: dict[str, str]) -> str:
    parts = []
    errors = 0
    for db in dict.fromkeys(p.database for p in phases):
        base = {
            p.clients: p.pooled.rps
            for p in phases
            if p.database == db and p.endpoint.key == BASELINE
        }
        items = []
        for p in phases:
            if p.database != db:
                continue
            errors += p.pooled.errors
            if p.endpoint.key == BASELINE:
                continue
            rps = p.pooled.rps
            items.append(f"{p.endpoint.key}@c{p.clients}={rps:.0f}/s({rps / base[p.clients]:.2f}x)")
        healthz = " ".join(f"c{c}={v:.0f}/s" for c, v in base.items())
        parts.append(f"{db}: healthz {healthz}; " + " ".join(items))
    for db, why in skipped.items():
        parts.append(f"{db}: skipped ({why.splitlines()[0][:160]})")
    return f"SUMMARY bench_api {' | '.join(parts)} | errors={errors}"


def parse_clients(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--clients wants numbers like 1,8, not {text!r}"
        ) from None
    if not values or any(not 1 <= v <= 64 for v in values):
        raise argparse.ArgumentTypeError("--clients: 1 to 64 each")
    return values


def parse_databases(text: str) -> list[str]:
    values = [x.strip().lower() for x in text.split(",") if x.strip()]
    aliases = {"pg": "postgresql", "postgres": "postgresql"}
    values = [aliases.get(v, v) for v in values]
    bad = [v for v in values if v not in DATABASES]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"--databases: choose from {','.join(DATABASES)}")
    return list(dict.fromkeys(values))


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--requests", type=int, default=2000, help="cap per phase and round")
    ap.add_argument("--seconds", type=float, default=15.0, help="time cap per phase and round")
    ap.add_argument("--clients", type=parse_clients, default=[1, 8], help="e.g. 1,8")
    ap.add_argument("--databases", type=parse_databases, default=list(DATABASES))
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions, pooled")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests per client")
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("MEDLABEL_BENCH_PG_URL", DEFAULT_PG_URL),
        help="administrative PostgreSQL URL (env MEDLABEL_BENCH_PG_URL)",
    )
    ap.add_argument("--json", type=Path, help="write all figures and conditions here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (server logs)")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds: 1 to 20")
    signal.signal(signal.SIGTERM, _raise_exit)

    before = conditions()
    info: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "conditions_before": before,
        "versions": versions(),
        "settings": {
            "requests": args.requests,
            "seconds": args.seconds,
            "clients": args.clients,
            "rounds": args.rounds,
            "warmup": args.warmup,
        },
        "databases": {},
    }
    print(
        f"# bench_api {before['time']}: nproc {before['nproc']} ({before['cpu_model']}), "
        f"load average {' '.join(map(str, before['loadavg']))}, "
        f"CPU pressure some avg10 {before['cpu_pressure_some_avg10']}%",
        file=sys.stderr,
        flush=True,
    )
    phases: list[Phase] = []
    skipped: dict[str, str] = {}
    for database in args.databases:
        workdir = Path(tempfile.mkdtemp(prefix=f"medlabel-bench-{database}-"))
        failed = False
        try:
            with contextlib.ExitStack() as stack:
                db_info: dict[str, Any] = {}
                url = None
                if database == "postgresql":
                    url, pg_version = stack.enter_context(pg_scratch_database(args.pg_url))
                    db_info["server_version"] = pg_version
                server = stack.enter_context(Server(workdir, database_url=url))
                t0 = time.monotonic()
                server.seed()
                server.start()
                db_info["setup_s"] = round(time.monotonic() - t0, 2)
                token = server.api_token()
                db_info["response_bytes"] = server.check(token)
                print(
                    f"  {database}: server pid {server.proc.pid if server.proc else '?'} on "
                    f"port {server.port}, ready after {db_info['setup_s']} s",
                    file=sys.stderr,
                    flush=True,
                )
                phases += measure(
                    server,
                    database,
                    token,
                    clients=args.clients,
                    rounds=args.rounds,
                    max_requests=args.requests,
                    max_seconds=args.seconds,
                    warmup=args.warmup,
                )
                info["databases"][database] = db_info
        except Skip as exc:
            skipped[database] = str(exc)
            print(f"  {database}: SKIPPED: {exc}", file=sys.stderr, flush=True)
        except BenchError as exc:
            failed = True
            print(f"  {database}: FAILED: {exc}", file=sys.stderr, flush=True)
        finally:
            if args.keep or failed:
                print(f"  kept {workdir} (server.log)", file=sys.stderr)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        if failed:
            return 2

    info["conditions_after"] = conditions()
    info["skipped"] = skipped
    info["phases"] = [p.summary() for p in phases]
    if phases:
        print(table(phases))
    line = summary_line(phases, skipped)
    print(line)
    info["summary"] = line
    if args.json:
        args.json.write_text(json.dumps(info, indent=1) + "\n")
    return 1 if any(p.pooled.errors for p in phases) or not phases else 0


if __name__ == "__main__":
    sys.exit(main())
