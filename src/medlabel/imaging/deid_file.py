"""The Part 10 file of a de-identified dataset: new preamble, new File Meta Information.

Annex E requires both to be replaced: the 128-byte preamble may hold anything (a name, a
TIFF header, an executable) and the original file meta carries AE titles, implementation
names and private data. Conventions:

- The preamble is 128 zero bytes, followed by ``DICM``.
- The File Meta Information is built from nothing: version ``00\\01``, Media Storage SOP
  Class/Instance UID from the (de-identified) dataset, the transfer syntax below, and
  medlabel's own Implementation Class UID and Version Name. Nothing of the original file
  meta is copied.
- Transfer syntax: encapsulated (compressed) Pixel Data keeps its transfer syntax and is
  copied fragment for fragment, never recompressed. Everything else is written Explicit VR
  Little Endian: implicit VR, big endian and deflated inputs included (``deid_copy`` has
  already byte-swapped big endian binary values).
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from medlabel.domain.errors import Unsupported

IMPLEMENTATION_CLASS_UID = "2.25.78745005514777604002673828485937372766"
IMPLEMENTATION_VERSION_NAME = "MEDLABEL_DEID_1"
PREAMBLE = b"\x00" * 128


def output_transfer_syntax(source_syntax: str | None, encapsulated: bool) -> UID:
    """The transfer syntax the de-identified file is written in; see the module."""
    if not encapsulated:
        return ExplicitVRLittleEndian
    syntax = UID(source_syntax or "")
    if (
        syntax.is_valid
        and syntax.is_transfer_syntax
        and syntax.is_compressed
        and syntax != DeflatedExplicitVRLittleEndian
    ):
        return syntax
    raise Unsupported(
        "The DICOM file has encapsulated (compressed) Pixel Data but no known compressed "
        "transfer syntax in its file meta; convert it with a DICOM toolkit and upload again."
    )


def new_file_meta(sop_class_uid: str, sop_instance_uid: str, syntax: UID) -> FileMetaDataset:
    """A File Meta Information built from nothing (nothing of the original is kept)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def dataset_bytes(dataset: Dataset) -> bytes:
    """``dataset`` (with ``file_meta`` and ``preamble`` set) as a Part 10 file."""
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
