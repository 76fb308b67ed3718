"""The keyed pseudonyms of de-identification: replacement UIDs, patient pseudonyms, date shifts.

Every value is an HMAC-SHA256 of the original under one per-deployment secret, with a
domain prefix per use (``uid:``, ``pid:``, ``study:``, ``shift:``) so that the same input
never yields related outputs in two roles. The mapping is deterministic: the same original
gives the same replacement in every file, upload and run of one deployment (references keep
resolving, re-uploads are idempotent), and it cannot be inverted or recomputed without the
secret (a plain hash of a Patient ID could be found by trying every ID).

Keep the secret outside the repository and the database, and never rotate it for a running
deployment: a new secret gives every patient, study and instance new identities.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from medlabel.domain.errors import InvalidInput

MIN_SECRET_BYTES = 32
PSEUDONYM_PREFIX = "MLP-"
SHIFT_MIN_DAYS = -3650  # about ten years back
SHIFT_MAX_DAYS = -365  # at least a year back, so no shifted date equals its original


def normalise_uid(value: str) -> str:
    """A UID as compared and hashed: without padding (spaces, NUL) around it."""
    return value.strip(" \x00\t\r\n")


@dataclass(frozen=True)
class DeidKeys:
    """The per-deployment secret and everything derived from it.

    ``secret`` must be at least 32 random bytes; it is left out of ``repr``.
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_SECRET_BYTES:
            raise InvalidInput(
                f"The de-identification secret must be at least {MIN_SECRET_BYTES} random "
                "bytes; generate one with `python -c 'import secrets; "
                "print(secrets.token_hex(32))'` and keep it outside the repository."
            )

    def _mac(self, domain: bytes, value: str) -> bytes:
        message = domain + value.encode("utf-8", errors="surrogateescape")
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The replacement of one UID: ``2.25.`` + the decimal of the first 16 bytes of
        HMAC-SHA256(secret, ``uid:`` + original), at most 44 characters.

        Padding around ``original`` is ignored, so ``"1.2.3"`` and ``"1.2.3\\0"`` map alike.
        The result is a valid UID (digits and dots, no leading zeros) for any input, even an
        invalid original such as one with letters or ``../``.
        """
        digest = self._mac(b"uid:", normalise_uid(original))
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def patient_pseudonym(self, patient_id: str, issuer: str = "") -> str:
        """``MLP-`` + 16 base32 characters (80 bits) of HMAC(``pid:`` issuer NUL id).

        Surrounding spaces of the Patient ID and of the Issuer of Patient ID are ignored;
        letter case is not (DICOM IDs are case-sensitive). The result is valid as a Patient ID
        (LO) and as a Patient's Name (PN).
        """
        message = issuer.strip(" \x00") + "\x00" + patient_id.strip(" \x00")
        return self._pseudonym(self._mac(b"pid:", message))

    def study_pseudonym(self, study_instance_uid: str) -> str:
        """The pseudonym of a patient without a Patient ID: one per study.

        Every instance of the study then shares one pseudonymous patient and one date shift,
        so references and intervals within the study hold; two studies of such a patient
        cannot be linked (there is nothing to link them by). The ``study:`` domain keeps
        these apart from Patient ID pseudonyms, even for a Patient ID that looks like a UID.
        """
        return self._pseudonym(self._mac(b"study:", normalise_uid(study_instance_uid)))

    def date_shift_days(self, pseudonym: str) -> int:
        """The patient's date shift in days, in [-3650, -365]: every date of one patient
        moves by the same amount, so intervals between them are kept exactly."""
        span = SHIFT_MAX_DAYS - SHIFT_MIN_DAYS + 1
        draw = int.from_bytes(self._mac(b"shift:", pseudonym)[:8], "big")
        return SHIFT_MIN_DAYS + draw % span

    @staticmethod
    def _pseudonym(digest: bytes) -> str:
        return PSEUDONYM_PREFIX + base64.b32encode(digest[:10]).decode("ascii")
