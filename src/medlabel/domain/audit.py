"""The hash chain of the audit trail (SECURITY.md §6.3), as pure functions.

Each record's ``row_hash`` is ``SHA-256(prev_hash || canonical_json(fields))`` where the
fields are every column but ``row_hash`` itself (``prev_hash`` included). The first record's
``prev_hash`` is :data:`GENESIS_HASH`. Sequence numbers start at 1 and have no gaps, so a
deleted, inserted, reordered or edited record breaks verification at a named ``seq``.

No PHI goes into a record: actors are internal user ids, objects internal ids or
de-identified UIDs, session ids and user agents are hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

GENESIS_HASH = "0" * 64


class Outcome(IntEnum):
    """DICOM audit EventOutcomeIndicator values."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True)
class AuditEntry:
    """What a caller asks to record; the store adds seq, time and the chain hashes."""

    action: str
    outcome: Outcome = Outcome.SUCCESS
    actor_user_id: int | None = None
    actor_role: str | None = None
    session_id_hash: str | None = None
    client_ip: str | None = None
    user_agent_hash: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    project_id: int | None = None
    before_hash: str | None = None
    after_hash: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts_utc: datetime
    prev_hash: str
    entry: AuditEntry
    row_hash: str

    def hashed_fields(self) -> dict[str, Any]:
        return record_fields(self.seq, self.ts_utc, self.prev_hash, self.entry)


def _ts(ts: datetime) -> str:
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_hash(value: Any) -> str:
    """SHA-256 of the canonical JSON of an object version (before/after hashes)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def record_fields(seq: int, ts_utc: datetime, prev_hash: str, entry: AuditEntry) -> dict[str, Any]:
    data = asdict(entry)
    data["outcome"] = int(entry.outcome)
    data["detail"] = dict(entry.detail)
    data.update(seq=seq, ts_utc=_ts(ts_utc), prev_hash=prev_hash)
    return data


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical_json(dict(fields)))
    return digest.hexdigest()


def seal(seq: int, ts_utc: datetime, prev_hash: str, entry: AuditEntry) -> AuditRecord:
    row_hash = chain_hash(prev_hash, record_fields(seq, ts_utc, prev_hash, entry))
    return AuditRecord(seq=seq, ts_utc=ts_utc, prev_hash=prev_hash, entry=entry, row_hash=row_hash)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    problem: str | None = None


def verify_chain(
    records: Iterable[AuditRecord], anchors: Mapping[int, str] | None = None
) -> ChainReport:
    """Walk ``records`` in seq order; report the first record that breaks the chain.

    ``anchors`` maps seq -> row_hash values recorded outside the database; a mismatch
    there means rows were rewritten and re-hashed consistently (e.g. by a superuser).
    """
    anchors = dict(anchors or {})
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for rec in records:
        problem = _check_record(rec, expected_seq, prev_hash, anchors)
        if problem:
            return ChainReport(
                ok=False,
                checked=checked,
                head_seq=expected_seq - 1,
                head_hash=prev_hash,
                first_broken_seq=expected_seq,
                problem=problem,
            )
        anchors.pop(rec.seq, None)
        prev_hash, expected_seq, checked = rec.row_hash, expected_seq + 1, checked + 1
    if anchors:
        missing = min(anchors)
        return ChainReport(
            ok=False,
            checked=checked,
            head_seq=expected_seq - 1,
            head_hash=prev_hash,
            first_broken_seq=missing,
            problem=f"anchored record {missing} is missing (chain truncated)",
        )
    return ChainReport(ok=True, checked=checked, head_seq=expected_seq - 1, head_hash=prev_hash)


def _check_record(
    rec: AuditRecord, expected_seq: int, prev_hash: str, anchors: Mapping[int, str]
) -> str | None:
    if rec.seq != expected_seq:
        return f"expected record {expected_seq} but found {rec.seq} (records missing)"
    if rec.prev_hash != prev_hash:
        return "prev_hash does not match the previous record's row_hash"
    if chain_hash(prev_hash, rec.hashed_fields()) != rec.row_hash:
        return "row_hash does not match the record's contents (record altered)"
    if rec.seq in anchors and anchors[rec.seq] != rec.row_hash:
        return "row_hash differs from the external anchor (chain rewritten)"
    return None
