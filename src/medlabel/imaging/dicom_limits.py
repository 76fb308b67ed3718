"""What a DICOM file may declare before it is refused, and how a refusal looks.

Shared by every step of the reading layer (``dicom``): the limits, the failure kinds
(``Damaged``: the structure is broken, as opposed to a limit being exceeded), the
exceptions raised as they are (``PASS_THROUGH``), and ``quiet``, which keeps pydicom's
warnings and log lines (they quote values from the file) out of the logs.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from medlabel.domain.errors import InvalidInput, MedlabelError

GiB = 1024**3
_MAX_DEPTH_CAP = 200  # the structure walk recurses once per level; keep far from Python's limit
# Raised as they are; anything else from pydicom or a decoder means damaged input.
PASS_THROUGH = (MedlabelError, MemoryError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True)
class DicomLimits:
    """What one DICOM file may declare before it is refused (before anything is allocated).

    ``max_total_pixel_bytes`` bounds the decoded size of all frames; ``max_elements``
    counts data elements and sequence items anywhere in the file (each becomes a Python
    object); ``max_file_bytes`` also bounds the inflated size of a deflated dataset.
    """

    max_file_bytes: int = 2 * GiB
    max_pixels_per_frame: int = 100_000_000
    max_frames: int = 10_000
    max_total_pixel_bytes: int = 4 * GiB
    max_sequence_depth: int = 32
    max_sequence_items: int = 100_000
    max_elements: int = 500_000

    def __post_init__(self) -> None:
        sizes = (self.max_file_bytes, self.max_pixels_per_frame, self.max_frames)
        counts = (self.max_total_pixel_bytes, self.max_sequence_items, self.max_elements)
        if min(sizes + counts) < 1 or not 1 <= self.max_sequence_depth <= _MAX_DEPTH_CAP:
            raise InvalidInput(
                "DICOM limits must be positive and the sequence depth at most "
                f"{_MAX_DEPTH_CAP}; correct the configuration."
            )


class Damaged(InvalidInput):
    """The file's structure is broken (as opposed to a limit being exceeded)."""


def truncated() -> InvalidInput:
    return Damaged(
        "The DICOM file ends inside an element, so it was cut off in transfer or storage; "
        "upload it again completely."
    )


def malformed(what: str) -> InvalidInput:
    return Damaged(f"The DICOM file is damaged: {what}. Export it again from the source system.")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence pydicom inside one of our calls: it warns *and logs* about invalid values,
    quoting them (PHI must not reach the logs). Process-wide while it lasts, like
    ``warnings.catch_warnings``; ingest runs one file per worker process."""
    logger = logging.getLogger("pydicom")
    disabled = logger.disabled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.disabled = True
        try:
            yield
        finally:
            logger.disabled = disabled
