"""Processing one staged file, inside a sandboxed worker process.

The function here reads a file the server staged under a server-generated name, recognises
it by content, de-identifies it, checks and decodes its pixels, and writes two blobs: the
de-identified file (DICOM only) and the decoded frames (raw little-endian C-order array). It
returns a small, picklable :class:`FileResult`; the database is written by the caller.
Nothing here ever puts a header value, a file name or a path into a message.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlabel.domain.errors import MedlabelError
from medlabel.storage.blobs import BlobStore, derived_name

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from medlabel.imaging.deid import DeidKeys
    from medlabel.imaging.deid_fast import FastOutcome
    from medlabel.imaging.dicom import DicomLimits, InstanceInfo


@dataclass(frozen=True)
class FileTask:
    seq: int
    path: str
    blob_root: str
    deid_secret: bytes
    sha256: str  # of the staged bytes, computed while staging


@dataclass(frozen=True)
class FramesBlob:
    sha256: str
    dtype: str
    frames: int
    rows: int
    columns: int
    samples: int


@dataclass(frozen=True)
class FileResult:
    seq: int
    kind: str
    outcome: str  # "processed" or "rejected"
    reason: str | None = None
    sha256: str | None = None  # of the staged (original) bytes
    size_bytes: int = 0
    dicom: dict[str, Any] | None = None  # instance facts (de-identified), see _dicom_facts
    volume: dict[str, Any] | None = None  # NIfTI / photo / slide facts
    frames: FramesBlob | None = None
    quarantine_reasons: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def store_frames(blobs: BlobStore, frames: np.ndarray, source_sha256: str) -> FramesBlob:
    """Write decoded frames ``(n, rows, cols[, samples])`` as one raw little-endian blob,
    named after the blob (or file) they were decoded from; not yet synced (see ingest)."""
    arr = np.ascontiguousarray(frames)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and np.little_endian is False):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    samples = arr.shape[3] if arr.ndim == 4 else 1
    sha = derived_name(source_sha256, "frames:v1")
    if not blobs.exists(sha):
        blobs.put_chunks(_chunks(arr), sync=False, name=sha)
    return FramesBlob(
        sha256=sha,
        dtype=arr.dtype.str.lstrip("<>|="),
        frames=arr.shape[0],
        rows=arr.shape[1],
        columns=arr.shape[2],
        samples=samples,
    )


def _chunks(arr: np.ndarray) -> Any:
    for frame in arr:
        yield frame.tobytes()


def process(task: FileTask) -> FileResult:
    """Handle one staged file; every expected failure becomes a rejected result."""
    from medlabel.imaging.sniff import FileKind, sniff

    path = Path(task.path)
    size = path.stat().st_size
    sha = task.sha256
    kind = sniff(path)
    base: dict[str, Any] = {"seq": task.seq, "kind": kind.value, "sha256": sha, "size_bytes": size}
    try:
        if kind is FileKind.DICOM:
            return _process_dicom(task, path, base)
        if kind in (FileKind.NIFTI, FileKind.NIFTI_GZ):
            return _process_nifti(task, path, base)
        if kind in (FileKind.PNG, FileKind.JPEG, FileKind.TIFF):
            return _process_raster(task, path, base)
    except MedlabelError as exc:
        return FileResult(**base, outcome="rejected", reason=exc.detail)
    return FileResult(**base, outcome="rejected", reason=_unsupported_reason(kind.value))


def _unsupported_reason(kind: str) -> str:
    if kind == "dicomdir":
        return "a DICOMDIR is an index, not an image: ingest its folder (the files it lists)"
    if kind in ("zip", "gzip"):
        return "archives inside archives are not accepted: unpack it and upload the files"
    return (
        "not a supported image file (DICOM Part 10 with the 'DICM' prefix, NIfTI, PNG, "
        "JPEG, TIFF or a whole-slide image); recognised by content, not by name"
    )


def _process_dicom(task: FileTask, path: Path, base: dict[str, Any]) -> FileResult:
    from medlabel.imaging import deid, dicom

    limits = dicom.DicomLimits()
    keys = deid.DeidKeys(secret=task.deid_secret)
    fast = _deidentify_fast(path, keys, limits)
    if fast is not None:
        clean = _read_own_output(fast.file_bytes)
        info = dicom.instance_info(clean)
        if _is_wsi(info):
            return _process_wsi(
                task,
                base,
                fast.file_bytes,
                clean,
                info,
                fast.patient_pseudonym,
                fast.quarantine_reasons,
            )
        dicom.check_pixel_module(clean, limits)
        stored = _native_frames(fast, info)
        if stored is None:
            stored = dicom.decode_frames(clean, limits)
        file_bytes, pseudonym, reasons = (
            fast.file_bytes,
            fast.patient_pseudonym,
            fast.quarantine_reasons,
        )
    else:
        ds = dicom.read_dataset(path, limits)
        outcome = deid.deidentify(ds, keys)
        clean = outcome.dataset
        info = dicom.instance_info(clean)
        if _is_wsi(info):
            file_bytes = deid.write_bytes(outcome)
            own = _read_own_output(file_bytes)
            return _process_wsi(
                task, base, file_bytes, own, dicom.instance_info(own),
                outcome.patient_pseudonym, outcome.quarantine_reasons,
            )  # fmt: skip
        dicom.check_pixel_module(clean, limits)
        stored = dicom.decode_frames(clean, limits)
        file_bytes = deid.write_bytes(outcome)
        pseudonym, reasons = outcome.patient_pseudonym, outcome.quarantine_reasons
    frames = dicom.to_modality_values(stored, info)
    blobs = BlobStore(Path(task.blob_root))
    facts = _dicom_facts(info, pseudonym, clean)
    facts["blob_sha256"] = blobs.put_bytes(file_bytes, sync=False)
    facts["blob_size"] = len(file_bytes)
    return FileResult(
        **base,
        outcome="processed",
        dicom=facts,
        frames=store_frames(blobs, frames, facts["blob_sha256"]),
        quarantine_reasons=tuple(reasons),
    )


def _is_wsi(info: InstanceInfo) -> bool:
    from medlabel.imaging.dicom_wsi import is_wsi

    return is_wsi(info.sop_class_uid)


def _process_wsi(
    task: FileTask,
    base: dict[str, Any],
    file_bytes: bytes,
    clean: Dataset,
    info: InstanceInfo,
    pseudonym: str,
    reasons: tuple[str, ...],
) -> FileResult:
    """A DICOM whole-slide image instance (``dicom_wsi``): a label, overview or thumbnail is
    dropped (nothing stored); a pyramid level is stored as its de-identified file and a tile
    index, without decoding its tiles. The series becomes a slide when items are built."""
    from medlabel.imaging import dicom_wsi

    dropped = dicom_wsi.dropped_reason(info.image_type)
    if dropped is not None:
        return FileResult(**base, outcome="rejected", reason=dropped)
    scanned = dicom_wsi.scan_volume(clean, file_bytes, info.pixel_spacing)
    blobs = BlobStore(Path(task.blob_root))
    facts = _dicom_facts(info, pseudonym, clean)
    facts["blob_sha256"] = blobs.put_bytes(file_bytes, sync=False)
    facts["blob_size"] = len(file_bytes)
    index = derived_name(facts["blob_sha256"], dicom_wsi.INDEX_VERSION)
    if not blobs.exists(index):
        blobs.put_chunks([scanned.index_bytes()], sync=False, name=index)
    facts["wsi"] = replace(scanned.level, tiles_sha256=index).to_dict()
    return FileResult(
        **base,
        outcome="processed",
        dicom=facts,
        quarantine_reasons=tuple(dict.fromkeys((*reasons, *scanned.reasons))),
    )


FAST_PATH_MAX_BYTES = 256 * 1024 * 1024  # larger files take the ordinary (mapped) path


def _deidentify_fast(path: Path, keys: DeidKeys, limits: DicomLimits) -> FastOutcome | None:
    """``deid_fast.deidentify_bytes`` on the file's bytes: the common case (a little
    endian image) de-identified and written without building pydicom datasets, byte for
    byte as the ordinary path writes it; ``None`` sends the file down the ordinary path
    (which also words every refusal)."""
    from medlabel.imaging import deid_fast

    size = path.stat().st_size
    if size > min(limits.max_file_bytes, FAST_PATH_MAX_BYTES):
        return None
    try:
        return deid_fast.deidentify_bytes(path.read_bytes(), keys)
    except Exception:  # an optimisation only: whatever goes wrong in it, fall back
        return None


def _read_own_output(file_bytes: bytes) -> Dataset:
    """The de-identified file just written, as a dataset (values stay raw until read).
    These are our own bytes, not the upload: pydicom reads them directly."""
    import pydicom

    return pydicom.dcmread(io.BytesIO(file_bytes))


def _native_frames(fast: FastOutcome, info: InstanceInfo) -> np.ndarray | None:
    """The stored values of monochrome, natively encoded Pixel Data read in place from
    the de-identified file: the array ``dicom.decode_frames`` returns for such an image
    (same dtype, no unused-bit correction), without decoding or copying. ``None`` for any
    other pixel module (colour, palette, 1-bit, float), which goes through the decoder.
    ``check_pixel_module`` must have passed (it checks sizes and limits)."""
    frames, rows, columns, bits = info.frames, info.rows, info.columns, info.bits_allocated
    if (
        frames is None
        or rows is None
        or columns is None
        or bits not in (8, 16, 32)
        or info.transfer_syntax != "1.2.840.10008.1.2.1"
        or info.photometric not in ("MONOCHROME1", "MONOCHROME2")
        or info.samples_per_pixel != 1
        or info.pixel_representation not in (0, 1)
    ):
        return None
    kind = "i" if info.pixel_representation else "u"
    dtype = np.dtype(f"<{kind}{bits // 8}")
    count = frames * rows * columns
    if count * dtype.itemsize > fast.pixel_length:
        return None
    arr = np.frombuffer(fast.file_bytes, dtype=dtype, count=count, offset=fast.pixel_offset)
    arr = arr.reshape(frames, rows, columns)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _dicom_facts(info: Any, pseudonym: str, ds: Any) -> dict[str, Any]:
    """The de-identified facts the database and series assembly need (picklable)."""
    return {
        "patient_pseudonym": pseudonym,
        "study_uid": info.study_uid,
        "study_date": str(ds.get("StudyDate", "") or "")[:8] or None,
        "study_description": str(ds.get("StudyDescription", "") or "")[:256],
        "series_uid": info.series_uid,
        "series_description": str(ds.get("SeriesDescription", "") or "")[:200],
        "sop_instance_uid": info.sop_instance_uid,
        "sop_class_uid": info.sop_class_uid,
        "modality": info.modality or "",
        "record": {
            "rows": info.rows,
            "columns": info.columns,
            "frames": info.frames,
            "samples_per_pixel": info.samples_per_pixel,
            "orientation": list(info.image_orientation) if info.image_orientation else None,
            "position": list(info.image_position) if info.image_position else None,
            "pixel_spacing": list(info.pixel_spacing) if info.pixel_spacing else None,
            "frame_of_reference_uid": info.frame_of_reference_uid,
            "instance_number": info.instance_number,
            "acquisition_number": info.acquisition_number,
            "echo_number": info.echo_number,
            "temporal_position": info.temporal_position,
            "per_frame_positions": [list(p) for p in info.per_frame_positions]
            if info.per_frame_positions
            else None,
        },
        "display": {
            "photometric": info.photometric,
            "invert": info.photometric == "MONOCHROME1",
            "window_centers": list(info.window_centers or ()),
            "window_widths": list(info.window_widths or ()),
            "rescale_slope": info.rescale_slope,
            "rescale_intercept": info.rescale_intercept,
            "spacing_source": getattr(info, "spacing_source", None),
            "frame_time_ms": getattr(info, "frame_time_ms", None),
        },
    }


def _process_nifti(task: FileTask, path: Path, base: dict[str, Any]) -> FileResult:
    from medlabel.imaging import nifti

    volume = nifti.read_nifti(path, nifti.NiftiLimits())
    blobs = BlobStore(Path(task.blob_root))
    stacked = np.concatenate([volume.frames(t) for t in range(volume.timepoints)])
    frames = store_frames(blobs, stacked, base["sha256"])
    return FileResult(
        **base,
        outcome="processed",
        frames=frames,
        volume={
            "format": "nifti",
            "geometry": volume.geometry.to_dict(),
            "timepoints": volume.timepoints,
        },
    )


def _process_raster(task: FileTask, path: Path, base: dict[str, Any]) -> FileResult:
    from medlabel.imaging import photo, slide

    if slide.is_slide(path):
        return _process_slide(task, path, base)
    image = photo.read_photo(path, photo.PhotoLimits())
    blobs = BlobStore(Path(task.blob_root))
    frames = store_frames(blobs, image.pixels, base["sha256"])
    return FileResult(
        **base,
        outcome="processed",
        frames=frames,
        volume={"format": "photo", "geometry": image.geometry.to_dict()},
    )


def _process_slide(task: FileTask, path: Path, base: dict[str, Any]) -> FileResult:
    """Store a copy of the slide without label/macro images and identifying text."""
    from medlabel.imaging.slide_sanitize import sanitize_slide

    blobs = BlobStore(Path(task.blob_root))
    with tempfile.TemporaryDirectory(dir=blobs.root) as tmp:
        clean = sanitize_slide(path, Path(tmp) / "slide.tiff")
        with clean.path.open("rb") as fh:
            source = blobs.put_chunks(iter(lambda: fh.read(1 << 20), b""), sync=False)
    return FileResult(
        **base,
        outcome="processed",
        volume={
            "format": "slide",
            "geometry": clean.info.geometry.to_dict(),
            "source_sha256": source,
            "slide": clean.info.to_dict(),
            "removed_images": list(clean.removed_images),
        },
        quarantine_reasons=tuple(clean.quarantine_reasons),
    )
