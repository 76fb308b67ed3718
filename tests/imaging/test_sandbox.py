"""The decoder sandbox: a crash, a memory blow-up or a hang costs one task, not the run."""

from __future__ import annotations

import os
import time

from medlabel.imaging.sandbox import Failed, Sandbox, SandboxLimits


def task(kind: str) -> str:
    if kind == "crash":
        os.abort()  # what a segfaulting codec looks like from outside
    if kind == "memory":
        blob = bytearray(2 * 1024**3)  # beyond the address-space limit
        return str(len(blob))
    if kind == "hang":
        time.sleep(60)
    if kind == "raise":
        raise RuntimeError("a bug in a decoder")
    return kind.upper()


def test_bad_tasks_fail_alone_and_the_rest_complete() -> None:
    limits = SandboxLimits(memory_bytes=1024**3, seconds_per_task=5, workers=2)
    tasks = ["a", "crash", "b", "memory", "c", "hang", "d", "raise", "e"]
    with Sandbox(task, limits) as box:
        results = list(box.map(tasks, window=4))
    assert [r for r in results if not isinstance(r, Failed)] == ["A", "B", "C", "D", "E"]
    failed = {t: r.reason for t, r in zip(tasks, results, strict=True) if isinstance(r, Failed)}
    assert set(failed) == {"crash", "memory", "hang", "raise"}
    assert "too long" in failed["hang"]
    assert "memory" in failed["memory"] or "crashed" in failed["memory"]
