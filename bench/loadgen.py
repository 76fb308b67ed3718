#!/usr/bin/env python3
"""A bounded HTTP/1.1 load generator for servers on this machine (standard library only).

Every run has two caps, a request count and a wall-clock limit, and stops at whichever comes
first; targets must be loopback addresses, so a typo cannot load someone else's server.
Each client is a thread with one keep-alive ``http.client`` connection. Before the timed
phase every client sends its warm-up requests on its own connection (so connection set-up and
first-request costs are not timed), then all clients start together.

As a module::

    from loadgen import Request, parse_url, run

    target, path = parse_url("http://127.0.0.1:8000/healthz")
    result = run(target, [Request(path=path)], clients=8, max_requests=2000, max_seconds=15)
    print(result.rps, result.p50_ms, result.p95_ms, result.p99_ms, result.errors)

As a command (round-robin over the URLs given, which must share one host and port)::

    python bench/loadgen.py http://127.0.0.1:8000/api/projects/demo \\
        -H "Authorization: Bearer $TOKEN" -c 8 -n 2000 -t 15

It prints one markdown table row per run and a final ``SUMMARY`` line; ``--json FILE`` keeps
the figures. The exit status is 1 when any request failed.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import math
import os
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Hard ceilings, whatever the caller asks for: a run is always bounded.
MAX_CLIENTS = 256
MAX_REQUESTS = 1_000_000
MAX_SECONDS = 600.0
MAX_WARMUP = 1_000

_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    ConnectionResetError,
    BrokenPipeError,
)


class TargetError(ValueError):
    """The target is not a plain-HTTP loopback URL."""


def require_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address (or ``localhost`` resolving only to one)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise TargetError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
            raise TargetError(f"{host!r} resolves to {sorted(addresses)}, not only loopback")
        return name
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        raise TargetError(
            f"refusing target {host!r}: give a loopback IP address (127.0.0.1, ::1) or localhost"
        ) from None
    if not address.is_loopback:
        raise TargetError(f"refusing non-loopback target {host!r}")
    return name


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __post_init__(self) -> None:
        require_loopback(self.host)
        if not 0 < self.port < 65536:
            raise TargetError(f"bad port {self.port}")

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_url(url: str) -> tuple[Target, str]:
    """Split ``http://host:port/path?query`` into a checked target and the request path."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise TargetError(f"only http:// URLs are supported, not {url!r}")
    if parts.hostname is None:
        raise TargetError(f"no host in {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.hostname, parts.port or 80), path


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


class Connection:
    """One keep-alive connection. A reused connection that the server has closed meanwhile
    is reopened once; a failure on a fresh connection is raised."""

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self.connects = 0
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(self, request: Request) -> tuple[int, bytes]:
        headers = dict(request.headers)
        while True:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.target.host, self.target.port, timeout=self.timeout
                )
                self._reused = False
                self.connects += 1
            reused = self._reused
            try:
                self._conn.request(request.method, request.path, body=request.body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except _STALE_CONNECTION:
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
            return response.status, data


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


@dataclass
class Result:
    """The outcome of one bounded run; latencies are of successful requests, in ms."""

    label: str
    clients: int
    ok: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    stopped_by: str = "requests"
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    statuses: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    warmup_errors: int = 0
    connects: int = 0
    bytes_in: int = 0
    client_cpu_s: float = 0.0
    load1_before: float = float("nan")
    load1_after: float = float("nan")

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p50_ms(self) -> float:
        return self.pct(0.50)

    @property
    def p95_ms(self) -> float:
        return self.pct(0.95)

    @property
    def p99_ms(self) -> float:
        return self.pct(0.99)

    @property
    def mean_ms(self) -> float:
        n = len(self.latencies_ms)
        return sum(self.latencies_ms) / n if n else float("nan")

    @property
    def max_ms(self) -> float:
        return self.latencies_ms[-1] if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        """Everything but the raw latencies, JSON-ready."""
        return {
            "label": self.label,
            "clients": self.clients,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": round(self.elapsed_s, 4),
            "stopped_by": self.stopped_by,
            "rps": round(self.rps, 2),
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "statuses": dict(self.statuses),
            "error_samples": list(self.error_samples),
            "warmup_errors": self.warmup_errors,
            "connects": self.connects,
            "bytes_in": self.bytes_in,
            "client_cpu_s": round(self.client_cpu_s, 4),
            "load1_before": self.load1_before,
            "load1_after": self.load1_after,
        }


def _record(tally: Result, key: str, ok: bool, ms: float, data: bytes) -> None:
    tally.statuses[key] = tally.statuses.get(key, 0) + 1
    if ok:
        tally.ok += 1
        tally.latencies_ms.append(ms)
        tally.bytes_in += len(data)
    else:
        tally.errors += 1
        if len(tally.error_samples) < 3:
            tally.error_samples.append(f"{key}: {data[:200].decode('utf-8', 'replace')}")


def _add(total: Result, part: Result) -> None:
    """Add one client's tally (or one round) to ``total``; times are left to the caller."""
    total.ok += part.ok
    total.errors += part.errors
    total.latencies_ms.extend(part.latencies_ms)
    for k, v in part.statuses.items():
        total.statuses[k] = total.statuses.get(k, 0) + v
    total.error_samples.extend(part.error_samples[: max(0, 3 - len(total.error_samples))])
    total.warmup_errors += part.warmup_errors
    total.connects += part.connects
    total.bytes_in += part.bytes_in
    if part.stopped_by == "time":
        total.stopped_by = "time"


def merge(results: Sequence[Result], label: str | None = None) -> Result:
    """Pool several runs of the same phase: counts and times add up, latencies are pooled."""
    if not results:
        raise ValueError("nothing to merge")
    out = Result(label=label or results[0].label, clients=results[0].clients)
    for r in results:
        _add(out, r)
        out.elapsed_s += r.elapsed_s
        out.client_cpu_s += r.client_cpu_s
    out.latencies_ms.sort()
    out.stopped_by = ",".join(sorted({r.stopped_by for r in results}))
    out.load1_before = results[0].load1_before
    out.load1_after = results[-1].load1_after
    return out


def _check_bounds(clients: int, max_requests: int, max_seconds: float, warmup: int) -> None:
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be 1..{MAX_CLIENTS}")
    if not 1 <= max_requests <= MAX_REQUESTS:
        raise ValueError(f"max_requests must be 1..{MAX_REQUESTS}")
    if not 0 < max_seconds <= MAX_SECONDS:
        raise ValueError(f"max_seconds must be in (0, {MAX_SECONDS}]")
    if not 0 <= warmup <= MAX_WARMUP:
        raise ValueError(f"warmup must be 0..{MAX_WARMUP}")


def run(
    target: Target,
    requests: Sequence[Request],
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
    warmup: int = 10,
    expect: Sequence[int] = (200,),
    timeout: float = 30.0,
    label: str = "",
) -> Result:
    """Send ``requests`` round-robin from ``clients`` threads until ``max_requests`` were
    sent in total or ``max_seconds`` passed (a request in flight at the deadline finishes).

    ``warmup`` requests per client go first, untimed and uncounted. A response whose status
    is not in ``expect``, or any exception, counts as an error; only successful requests
    enter the latency percentiles and req/s.
    """
    if not requests:
        raise ValueError("no requests to send")
    _check_bounds(clients, max_requests, max_seconds, warmup)
    expected = frozenset(expect)
    result = Result(label=label or f"{requests[0].method} {requests[0].path}", clients=clients)
    lock = threading.Lock()
    issued = 0
    clock: dict[str, float] = {}
    finished: list[float] = []

    def start_clock() -> None:  # runs once, in the last thread to reach the barrier
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + max_seconds

    barrier = threading.Barrier(clients, action=start_clock)

    def take() -> int | None:
        """The next request's number, or None when the request budget is spent."""
        nonlocal issued
        with lock:
            if issued >= max_requests:
                return None
            issued += 1
            return issued - 1

    def timed(conn: Connection, tally: Result) -> None:
        deadline = clock["deadline"]
        while True:
            if time.perf_counter() >= deadline:
                tally.stopped_by = "time"
                return
            n = take()
            if n is None:
                return
            t0 = time.perf_counter_ns()
            try:
                status, data = conn.send(requests[n % len(requests)])
                key = str(status)
            except Exception as exc:  # timeouts, refused or reset connections
                status, data, key = -1, str(exc).encode(), type(exc).__name__
            _record(tally, key, status in expected, (time.perf_counter_ns() - t0) / 1e6, data)

    def client(index: int) -> None:
        conn = Connection(target, timeout=timeout)
        tally = Result(label=result.label, clients=1)
        try:
            for i in range(warmup):
                try:
                    status, _ = conn.send(requests[(index + i) % len(requests)])
                    tally.warmup_errors += status not in expected
                except Exception:
                    tally.warmup_errors += 1
            try:
                barrier.wait(timeout=timeout + 60)
            except threading.BrokenBarrierError:
                return
            timed(conn, tally)
        finally:
            conn.close()
            tally.connects = conn.connects
            end = time.perf_counter()
            with lock:
                finished.append(end)
                _add(result, tally)

    result.load1_before = os.getloadavg()[0]
    cpu0 = time.process_time()
    threads = [
        threading.Thread(target=client, args=(i,), name=f"loadgen-{i}", daemon=True)
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    # Upper bound on a run: warm-up, the timed phase, then one request in flight per client.
    join_deadline = time.monotonic() + (warmup + 2) * timeout + max_seconds + 60
    for t in threads:
        t.join(max(0.0, join_deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        barrier.abort()
        raise RuntimeError("load generator threads did not finish in time")
    if "start" not in clock:
        raise RuntimeError("clients never started together (barrier broken)")
    result.elapsed_s = max(finished) - clock["start"]
    result.client_cpu_s = time.process_time() - cpu0
    result.load1_after = os.getloadavg()[0]
    result.latencies_ms.sort()
    return result


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}"


TABLE_HEADER = (
    "| run | clients | requests ok | errors | s | req/s | p50 ms | p95 ms | p99 ms | load1 |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(r: Result) -> str:
    return (
        f"| {r.label} | {r.clients} | {r.ok} | {r.errors} | {r.elapsed_s:.2f} | {_fmt(r.rps)} "
        f"| {_fmt(r.p50_ms)} | {_fmt(r.p95_ms)} | {_fmt(r.p99_ms)} | {r.load1_before:.2f} |"
    )


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"header must look like 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Bounded HTTP load generator for loopback targets (stdlib only)."
    )
    ap.add_argument("urls", nargs="+", help="http://127.0.0.1:PORT/path ... (same host:port)")
    ap.add_argument("-c", "--clients", type=int, default=1, help="concurrent connections")
    ap.add_argument("-n", "--requests", type=int, default=1000, help="cap on timed requests")
    ap.add_argument("-t", "--seconds", type=float, default=15.0, help="cap on the timed phase")
    ap.add_argument("-w", "--warmup", type=int, default=10, help="untimed requests per client")
    ap.add_argument("-X", "--method", default="GET")
    ap.add_argument("-H", "--header", type=_header, action="append", default=[])
    ap.add_argument("--data-file", type=Path, help="request body")
    ap.add_argument("--expect", type=int, action="append", help="success status (default 200)")
    ap.add_argument("--timeout", type=float, default=30.0, help="socket timeout per request")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)

    try:
        parsed = [parse_url(u) for u in args.urls]
    except TargetError as exc:
        ap.error(str(exc))
    targets = {t for t, _ in parsed}
    if len(targets) != 1:
        ap.error("all URLs must share one host and port")
    body = args.data_file.read_bytes() if args.data_file else None
    requests = [
        Request(method=args.method.upper(), path=p, headers=tuple(args.header), body=body)
        for _, p in parsed
    ]
    try:
        result = run(
            targets.pop(),
            requests,
            clients=args.clients,
            max_requests=args.requests,
            max_seconds=args.seconds,
            warmup=args.warmup,
            expect=args.expect or (200,),
            timeout=args.timeout,
            label=args.label,
        )
    except ValueError as exc:
        ap.error(str(exc))
    print(TABLE_HEADER)
    print(table_row(result))
    for sample in result.error_samples:
        print(f"error: {sample}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result.summary(), indent=1) + "\n")
    print(
        f"SUMMARY loadgen {result.label} c={result.clients} n={result.ok} "
        f"rps={_fmt(result.rps)} p50={_fmt(result.p50_ms)}ms p95={_fmt(result.p95_ms)}ms "
        f"p99={_fmt(result.p99_ms)}ms errors={result.errors} stopped_by={result.stopped_by}"
    )
    return 1 if result.errors or not result.ok else 0


if __name__ == "__main__":
    sys.exit(main())
