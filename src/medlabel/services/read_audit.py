"""Auditing reads of pixel data without an audit write per frame.

HIPAA audit controls cover access, so reading an item's pixels is recorded as
``item.read`` (DICOM "Instances Accessed") once per user, item and hour per server process:
a viewer fetching 300 slices makes one record, not 300.
"""

from __future__ import annotations

import threading
from datetime import datetime

from medlabel.services import audit
from medlabel.services.actor import Actor, Clock
from medlabel.storage.db import Database

_MAX_KEYS = 100_000


class ReadAudit:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._seen: set[tuple[int | None, int, str]] = set()
        self._lock = threading.Lock()

    def _bucket(self, now: datetime) -> str:
        return now.strftime("%Y%m%d%H")

    def first_read(self, actor: Actor, item_id: int) -> bool:
        """True the first time this hour that ``actor`` reads this item here (then record)."""
        key = (actor.user_id, item_id, self._bucket(self._clock()))
        with self._lock:
            if key in self._seen:
                return False
            if len(self._seen) > _MAX_KEYS:
                self._seen.clear()
            self._seen.add(key)
            return True

    def record(self, actor: Actor, item_id: int, project_id: int, role: str, what: str) -> None:
        with self._db.write() as s:
            audit.record(
                s,
                audit.entry(
                    actor,
                    "item.read",
                    role=role,
                    object_type="item",
                    object_id=item_id,
                    project_id=project_id,
                    detail={"what": what},
                ),
                self._clock,
            )
