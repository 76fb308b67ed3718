"""Reading an item's decoded frames from its raw blobs.

Frames are stored as raw little-endian C-order arrays, one blob per instance (or per file),
in item order; an enhanced multi-frame volume has one blob and a ``frame_order`` that maps
item slice ``k`` to the stored frame. A frame is read with one ``pread``; a batch of
consecutive frames from one blob with one ``pread`` too.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.domain.errors import InvalidInput
from medlabel.storage.blobs import BlobStore

MAX_BATCH_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class FrameLayout:
    dtype: np.dtype[Any]
    rows: int
    columns: int
    samples: int
    frames: int

    @property
    def shape(self) -> tuple[int, ...]:
        base = (self.rows, self.columns)
        return (*base, self.samples) if self.samples > 1 else base


class FrameSource:
    def __init__(self, pixel: dict[str, Any], blobs: BlobStore) -> None:
        self._blobs = blobs
        self._entries = pixel.get("blobs") or []
        self._order = pixel.get("frame_order")
        self.layout = FrameLayout(
            dtype=np.dtype(pixel.get("dtype", "uint8")).newbyteorder("<"),
            rows=int(pixel.get("rows", 0)),
            columns=int(pixel.get("columns", 0)),
            samples=int(pixel.get("samples", 1)),
            frames=int(pixel.get("frames", 0)),
        )
        self._starts: list[int] = []
        total = 0
        for entry in self._entries:
            self._starts.append(total)
            total += int(entry["frames"])

    def _check(self, k: int) -> None:
        if not 0 <= k < self.layout.frames:
            raise InvalidInput(
                f"Frame {k} does not exist: this item has frames 0 to {self.layout.frames - 1}."
            )

    def _locate(self, k: int) -> tuple[dict[str, Any], int]:
        stored = int(self._order[k]) if self._order else k
        index = bisect.bisect_right(self._starts, stored) - 1
        return self._entries[index], stored - self._starts[index]

    def _read(self, entry: dict[str, Any], first: int, count: int) -> np.ndarray:
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
        per_frame = self.layout.rows * self.layout.columns * self.layout.samples
        nbytes = per_frame * dtype.itemsize
        fd = os.open(self._blobs.path(entry["sha256"]), os.O_RDONLY)
        try:
            data = os.pread(fd, nbytes * count, nbytes * first)
        finally:
            os.close(fd)
        arr = np.frombuffer(data, dtype=dtype).reshape((count, *self.layout.shape))
        return np.asarray(arr if dtype == self.layout.dtype else arr.astype(self.layout.dtype))

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as ``(rows, columns[, samples])`` in the item's dtype."""
        self._check(k)
        entry, index = self._locate(k)
        return np.asarray(self._read(entry, index, 1)[0])

    @property
    def frame_bytes(self) -> int:
        layout = self.layout
        return layout.rows * layout.columns * layout.samples * layout.dtype.itemsize

    def raw(self, start: int, count: int) -> bytes:
        """``count`` consecutive frames as little-endian bytes (one response body)."""
        return b"".join(self.iter_raw(start, count))

    def iter_raw(self, start: int, count: int) -> Iterator[bytes]:
        """The same bytes as :meth:`raw`, a run of frames at a time (for streaming).

        The range is checked now, before the first chunk is produced."""
        self._check(start)
        self._check(start + count - 1)
        if self.frame_bytes * count > MAX_BATCH_BYTES:
            raise InvalidInput(
                f"Ask for at most {MAX_BATCH_BYTES // self.frame_bytes} frames at once."
            )
        return self._chunks(start, count)

    def _chunks(self, start: int, count: int) -> Iterator[bytes]:
        k = start
        while k < start + count:
            entry, index = self._locate(k)
            run = min(self._run_length(k, start + count, entry, index), 16)
            yield self._read(entry, index, run).tobytes()
            k += run

    def _run_length(self, k: int, end: int, entry: dict[str, Any], index: int) -> int:
        """How many item frames from ``k`` are stored consecutively in the same blob."""
        if self._order:
            run = 1
            while k + run < end and int(self._order[k + run]) == int(self._order[k]) + run:
                run += 1
            return run
        return min(end - k, int(entry["frames"]) - index)
