"""Content-addressed blob store in the data directory.

A blob's name is the SHA-256 of its bytes (``blobs/ab/cd/abcd...``), never anything taken
from user input. Writes go to a temporary file in the same file system, are fsync'ed and then
renamed into place, so a blob is either complete or absent; storing the same bytes twice is a
no-op. Blobs are immutable and only referenced from the database after they exist.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        if not _SHA256_RE.fullmatch(sha256):
            raise ValueError("blob names are lower-case hex SHA-256 digests")
        return self.root / "blobs" / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_bytes(self, data: bytes, *, sync: bool = True) -> str:
        return self.put_chunks([data], sync=sync)

    def put_chunks(
        self, chunks: Iterable[bytes], *, sync: bool = True, name: str | None = None
    ) -> str:
        """Store the concatenated chunks; return their SHA-256 (or ``name`` when given).

        ``sync=False`` skips the per-file fsync: the caller must call :meth:`sync` before it
        records the blob anywhere (ingest batches many blobs into one sync). ``name`` stores
        a blob *derived* deterministically from another one under a name computed from its
        source (see :func:`derived_name`) without hashing the content.
        """
        self._tmp.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256() if name is None else None
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    if digest is not None:
                        digest.update(chunk)
                    out.write(chunk)
                out.flush()
                if sync:
                    os.fsync(out.fileno())
            sha = digest.hexdigest() if digest is not None else str(name)
            final = self.path(sha)
            if final.exists():
                os.unlink(tmp_name)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, final)
                if sync:  # the rename itself must survive a crash too
                    _fsync_dir(final.parent)
            return sha
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def sync(self) -> None:
        """Flush everything written to the blob store's file system to stable storage."""
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "blobs", os.O_RDONLY)
        try:
            if _syncfs is None or _syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def derived_name(source_sha256: str, what: str) -> str:
    """The blob name of something computed deterministically from blob ``source_sha256``."""
    return hashlib.sha256(f"{source_sha256}:{what}".encode()).hexdigest()


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()
