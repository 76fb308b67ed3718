"""The job queue: Huey with SQLite storage (embedded) or Redis (teams).

Tasks carry only ids; the worker rebuilds what it needs from the settings. A task that
fails marks its job failed with a reason instead of leaving it "running".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from medlabel.domain.errors import MedlabelError
from medlabel.settings import Settings

log = logging.getLogger("medlabel.jobs")


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer that runs inside another program: it leaves signal handling alone."""

    def _set_signal_handlers(self) -> None:
        return None


def make_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    if immediate:
        return MemoryHuey("medlabel", immediate=True)
    if settings.redis_url:
        return RedisHuey("medlabel", url=settings.redis_url)
    path = settings.ensure_data_dir() / "queue.db"
    return SqliteHuey("medlabel", filename=str(path))


class JobQueue:
    """Enqueue and run medlabel's background jobs."""

    def __init__(
        self, huey: Huey, run_ingest: Callable[[str], None], fail_ingest: Callable[[str, str], None]
    ) -> None:
        self.huey = huey
        self._run_ingest = run_ingest
        self._fail_ingest = fail_ingest
        self._ingest = huey.task(name="medlabel.ingest", retries=0)(self._ingest_task)
        self._consumer: _EmbeddedConsumer | None = None
        self._lock = threading.Lock()

    def _ingest_task(self, job_id: str) -> None:
        try:
            self._run_ingest(job_id)
        except MedlabelError as exc:
            self._fail_ingest(job_id, exc.detail)
        except Exception:
            log.exception("ingest job %s failed", job_id)
            self._fail_ingest(job_id, "the job failed on the server; see the server log")

    def enqueue_ingest(self, job_id: str) -> Any:
        return self._ingest(job_id)

    def start_consumer(self, workers: int = 1) -> None:
        """Run the consumer in threads of this process (``medlabel serve``)."""
        with self._lock:
            if self._consumer is None:
                self._consumer = _EmbeddedConsumer(
                    self.huey, workers=workers, worker_type="thread", periodic=False
                )
                self._consumer.start()

    def stop_consumer(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.stop(graceful=True)
                self._consumer = None

    def run_consumer(self, workers: int) -> None:
        """Run the consumer in the foreground until a signal (``medlabel worker``)."""
        Consumer(self.huey, workers=workers, worker_type="thread", periodic=False).run()
