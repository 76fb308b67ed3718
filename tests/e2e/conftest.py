"""Real server processes for the end-to-end tests.

``medlabel demo`` prepares a fresh data directory and prints the admin's password; then
``medlabel serve`` runs in a child process on a free port of 127.0.0.1 until the test is
done. The server's output goes to a log file that is shown when something fails.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2
import pytest

MEDLABEL = Path(sys.executable).parent / "medlabel"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without MEDLABEL_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDLABEL_")}
    env.update(extra)
    return env


def run_cli(*args: str | Path, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(MEDLABEL), *map(str, args)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
    return result.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``medlabel serve`` child process."""

    data_dir: Path
    password: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    username: str = "admin"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> int:
        """SIGTERM, then wait for the exit; SIGKILL only if it does not stop in time."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT_S)
            return self.process.returncode
        finally:
            if not self._log.closed:
                self._log.close()


def _wait_ready(server: Server) -> bool:
    """True once /readyz answers 200; False if the process exited first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.running():
            return False
        try:
            if httpx2.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                return True
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server not ready after {START_TIMEOUT_S} s:\n{server.log()}")


def start_demo_server(data_dir: Path, *serve_args: str) -> Server:
    """Run ``medlabel demo`` on ``data_dir`` and serve it (with ``serve_args``, e.g.
    ``--workers 2``); the caller must terminate it."""
    out = run_cli("demo", "--data-dir", data_dir)
    match = re.search(r"^\s+password:\s+(\S+)\s*$", out, re.M)
    assert match, out
    password = match.group(1)
    for attempt in range(3):
        port = free_port()
        log_path = data_dir.parent / f"server-{port}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                str(MEDLABEL),
                "serve",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *serve_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
        server = Server(data_dir, password, port, process, log_path, log)
        try:
            if _wait_ready(server):
                return server
        except BaseException:
            server.terminate()
            raise
        server.terminate()
        text = server.log()
        # Another process may have taken the free port between the check and the bind.
        if "address already in use" not in text.lower() or attempt == 2:
            raise AssertionError(f"server exited with {process.returncode}:\n{text}")
    raise AssertionError("unreachable")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[], Server]]:
    """Start fresh demo servers; all are stopped (and killed if need be) afterwards."""
    started: list[Server] = []

    def start() -> Server:
        started.append(start_demo_server(tmp_path / f"data{len(started)}"))
        return started[-1]

    yield start
    for server in started:
        server.terminate()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One demo server shared by the tests of a module."""
    server = start_demo_server(tmp_path_factory.mktemp("e2e") / "data")
    try:
        yield server
    finally:
        server.terminate()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium through Playwright, shared by a module's browser tests."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_login_page import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
