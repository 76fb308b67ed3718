"""Receiving archives safely (SECURITY.md cases 20-25).

An uploaded zip is streamed to a capped file under a server-generated name, then unpacked
entry by entry into the job's staging folder as ``000001``, ``000002``... Entry names are
never used as paths. The whole archive is refused (and nothing of it kept) for absolute or
parent-relative entry names, links, encryption, too many entries, a total or per-entry
expansion beyond the limits, or entries whose real size exceeds what they declare.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from medlabel.domain.errors import InvalidInput, TooLarge

ARCHIVE_NAME = "upload.zip"
_SKIP_PREFIXES = ("__MACOSX/",)
_SKIP_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int
    max_entries: int
    max_ratio: int


def _unsafe_name(name: str) -> bool:
    if not name or "\x00" in name:
        return True
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return True
    parts = name.replace("\\", "/").split("/")
    return any(p == ".." for p in parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    """A Unix symlink, device, FIFO or socket entry (file type bits in the external attrs)."""
    file_type = stat.S_IFMT(info.external_attr >> 16)
    return file_type not in (0, stat.S_IFREG, stat.S_IFDIR)


def _skipped(info: zipfile.ZipInfo) -> bool:
    name = info.filename
    return (
        info.is_dir()
        or name.startswith(_SKIP_PREFIXES)
        or PurePosixPath(name.replace("\\", "/")).name in _SKIP_NAMES
        or PurePosixPath(name.replace("\\", "/")).name.startswith("._")
    )


def check_archive(archive: Path, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """The entries to unpack, after refusing anything unsafe about the archive as a whole."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput("The upload is not a readable zip archive.") from exc
    with zf:
        infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise TooLarge(f"The archive has {len(infos)} entries; the limit is {limits.max_entries}.")
    entries, total = [], 0
    for n, info in enumerate(infos, start=1):
        if _unsafe_name(info.filename):
            raise InvalidInput(
                f"Archive entry {n} has an absolute or '..' path; the archive "
                "was refused. Zip the files with relative paths."
            )
        if _is_link(info):
            raise InvalidInput(f"Archive entry {n} is a link or device; the archive was refused.")
        if info.flag_bits & 0x1:
            raise InvalidInput(
                "Encrypted archives are not accepted; zip the files without a password."
            )
        if _skipped(info):
            continue
        if info.file_size > limits.max_ratio * max(info.compress_size, 1) and (
            info.file_size > 1 << 20
        ):
            raise TooLarge(
                f"Archive entry {n} expands more than {limits.max_ratio} times "
                "(a zip bomb?); the archive was refused."
            )
        total += info.file_size
        entries.append(info)
    if total > limits.max_bytes:
        raise TooLarge(f"The archive expands to {total} bytes; the limit is {limits.max_bytes}.")
    return entries


@dataclass(frozen=True)
class Staged:
    """A staged file: its size and the SHA-256 of its (original) bytes."""

    size: int
    sha256: str


def copy_hashed(source: BinaryIO, target: Path) -> Staged:
    """Copy a stream to ``target``, hashing it on the way (the file is read only once)."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return Staged(size=size, sha256=digest.hexdigest())


def unpack(archive: Path, folder: Path, limits: ArchiveLimits) -> list[Staged]:
    """Unpack the safe entries as numbered files, in order."""
    entries = check_archive(archive, limits)
    staged, total = [], 0
    with zipfile.ZipFile(archive) as zf:
        for seq, info in enumerate(entries, start=1):
            item = _copy_entry(zf, info, folder / f"{seq:06d}", limits.max_bytes - total)
            total += item.size
            staged.append(item)
    return staged


def _copy_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> Staged:
    written = 0
    digest = hashlib.sha256()
    try:
        with zf.open(info) as src, target.open("wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                digest.update(chunk)
                if written > info.file_size or written > budget:
                    raise TooLarge(
                        "An archive entry is larger than it declares (a zip bomb?); "
                        "the archive was refused."
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise InvalidInput(
            "The archive is damaged (an entry could not be read); upload it again."
        ) from exc
    return Staged(size=written, sha256=digest.hexdigest())
