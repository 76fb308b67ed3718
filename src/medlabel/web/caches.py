"""Short-lived caches that keep the database off the hot pixel paths.

A viewer fetches hundreds of frames a minute; checking the token and the item's project
membership in the database for each costs more than reading the frame. Both answers are
cached in this process for a few seconds (``MEDLABEL_AUTH_CACHE_SECONDS``, default 5; 0
turns caching off). Changes made through this process (logout, token revocation, password
or role changes, releases) clear the caches at once; changes made through another server
process take effect within that many seconds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from medlabel.services.actor import Clock

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, clock: Clock, max_entries: int = 20_000) -> None:
        self._ttl = timedelta(seconds=seconds)
        self._clock = clock
        self._max = max_entries
        self._data: OrderedDict[K, tuple[datetime, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._ttl > timedelta(0)

    def get(self, key: K) -> V | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            now = self._clock()
            if now - stored_at > self._ttl or now < stored_at:
                del self._data[key]
                return None
            return value

    def put(self, key: K, value: V) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._data[key] = (self._clock(), value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
