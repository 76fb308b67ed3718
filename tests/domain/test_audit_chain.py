"""The audit hash chain as pure functions (SECURITY.md §6.3, case 48).

A chain is built with :func:`seal`; :func:`verify_chain` must accept exactly the chains
that were built that way and, for any single tampering, name the first record where the
chain no longer holds:

* an edited record (any hashed field, or its stored hashes) is named by its own seq;
* a deleted record is noticed at the first surviving record after the gap, whose link
  to its predecessor is broken;
* a record moved out of place is named by the seq it carries;
* a forged record that is itself consistently sealed is noticed at the next original
  record, which no longer links up;
* a truncated tail, or a rewrite that recomputed every later hash, is only visible
  against external anchors, and is then named by the first anchored seq that differs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from medlabel.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Outcome,
    canonical_json,
    chain_hash,
    content_hash,
    seal,
    verify_chain,
)

EPOCH = datetime(2026, 1, 1, 8, 30, 0)
# Chains of many-field records are costly to generate; 50 examples per property suffice.
PROPERTY = settings(deadline=None, max_examples=50)

# ---- strategies -------------------------------------------------------------------------

short_text = st.text(max_size=12)
opt_text = st.none() | short_text
opt_int = st.none() | st.integers(min_value=0, max_value=10**9)
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | short_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=5,
)
details = st.dictionaries(short_text, json_value, max_size=4)

entries = st.builds(
    AuditEntry,
    action=st.sampled_from(["login.success", "project.create", "token.revoke", "audit.verify"]),
    outcome=st.sampled_from(list(Outcome)),
    actor_user_id=opt_int,
    actor_role=st.none() | st.sampled_from(["user", "site-admin", "annotator", "system"]),
    session_id_hash=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    client_ip=opt_text,
    user_agent_hash=opt_text,
    object_type=opt_text,
    object_id=opt_text,
    project_id=opt_int,
    before_hash=opt_text,
    after_hash=opt_text,
    reason=opt_text,
    detail=details,
)


def build_chain(items: list[AuditEntry], start: datetime = EPOCH) -> list[AuditRecord]:
    chain: list[AuditRecord] = []
    prev = GENESIS_HASH
    for i, item in enumerate(items):
        rec = seal(i + 1, start + timedelta(seconds=i, microseconds=i), prev, item)
        chain.append(rec)
        prev = rec.row_hash
    return chain


chains = st.lists(entries, min_size=1, max_size=6).map(build_chain)
long_chains = st.lists(entries, min_size=2, max_size=6).map(build_chain)

ENTRY_FIELDS = [f.name for f in dataclasses.fields(AuditEntry)]


def _differs(value: Any) -> Any:
    """A value of the same kind as ``value`` that is certainly different from it."""
    if isinstance(value, Outcome):
        return next(o for o in Outcome if o is not value)
    if isinstance(value, dict):
        return {"tampered": value}
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    assert value is None
    return "x"


def _flip(hex_hash: str) -> str:
    return ("1" if hex_hash[0] == "0" else "0") + hex_hash[1:]


def mutate(rec: AuditRecord, field: str) -> AuditRecord:
    if field in ENTRY_FIELDS:
        entry = dataclasses.replace(rec.entry, **{field: _differs(getattr(rec.entry, field))})
        return dataclasses.replace(rec, entry=entry)
    if field == "ts_utc":
        return dataclasses.replace(rec, ts_utc=rec.ts_utc + timedelta(microseconds=1))
    return dataclasses.replace(rec, **{field: _flip(getattr(rec, field))})


# ---- valid chains -----------------------------------------------------------------------


@PROPERTY
@given(chains)
def test_a_sealed_chain_verifies(chain: list[AuditRecord]) -> None:
    report = verify_chain(chain)
    assert report.ok, report.problem
    assert report.checked == len(chain)
    assert report.head_seq == chain[-1].seq == len(chain)
    assert report.head_hash == chain[-1].row_hash
    assert report.first_broken_seq is None and report.problem is None
    # Every record links to its predecessor and its hash covers its own fields.
    assert chain[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.row_hash
    for rec in chain:
        assert rec.row_hash == chain_hash(rec.prev_hash, rec.hashed_fields())
    # Matching anchors do not change the verdict.
    anchors = {rec.seq: rec.row_hash for rec in chain[::2]}
    assert verify_chain(chain, anchors).ok


def test_an_empty_chain_verifies_with_the_genesis_head() -> None:
    report = verify_chain([])
    assert report.ok and report.checked == 0 and report.head_seq == 0
    assert report.head_hash == GENESIS_HASH == "0" * 64


def test_row_hash_is_sha256_of_prev_hash_and_canonical_fields() -> None:
    import hashlib

    entry = AuditEntry(action="project.create", actor_user_id=7, detail={"b": 1, "a": [1, 2]})
    rec = seal(1, EPOCH, GENESIS_HASH, entry)
    fields = rec.hashed_fields()
    assert "row_hash" not in fields
    assert fields["prev_hash"] == GENESIS_HASH and fields["seq"] == 1
    assert fields["ts_utc"] == "2026-01-01T08:30:00.000000Z"
    expected = hashlib.sha256(GENESIS_HASH.encode() + canonical_json(fields)).hexdigest()
    assert rec.row_hash == expected
    assert len(rec.row_hash) == 64 and int(rec.row_hash, 16) >= 0


def test_aware_timestamps_hash_as_the_same_utc_instant() -> None:
    entry = AuditEntry(action="logout")
    naive = seal(1, EPOCH, GENESIS_HASH, entry)
    cet = timezone(timedelta(hours=1))
    aware = seal(1, EPOCH.replace(tzinfo=UTC).astimezone(cet), GENESIS_HASH, entry)
    assert aware.row_hash == naive.row_hash
    later = seal(1, EPOCH + timedelta(microseconds=1), GENESIS_HASH, entry)
    assert later.row_hash != naive.row_hash


@PROPERTY
@given(details)
def test_detail_key_order_does_not_change_the_row_hash(detail: dict[str, Any]) -> None:
    reordered = dict(reversed(list(detail.items())))
    a = seal(1, EPOCH, GENESIS_HASH, AuditEntry(action="x", detail=detail))
    b = seal(1, EPOCH, GENESIS_HASH, AuditEntry(action="x", detail=reordered))
    assert a.row_hash == b.row_hash


# ---- single mutations -------------------------------------------------------------------

MUTABLE_FIELDS = [*ENTRY_FIELDS, "ts_utc", "prev_hash", "row_hash"]


@PROPERTY
@given(chains, st.data())
def test_editing_any_field_of_any_record_is_named(chain: list[AuditRecord], data: Any) -> None:
    index = data.draw(st.integers(0, len(chain) - 1), label="index")
    field = data.draw(st.sampled_from(MUTABLE_FIELDS), label="field")
    tampered = list(chain)
    tampered[index] = mutate(chain[index], field)
    report = verify_chain(tampered)
    assert not report.ok
    assert report.first_broken_seq == chain[index].seq
    assert report.checked == index
    assert report.head_seq == index and report.problem


@pytest.mark.parametrize("field", MUTABLE_FIELDS)
def test_every_field_is_covered_by_the_hash(field: str) -> None:
    chain = build_chain([AuditEntry(action="a", detail={"k": 1}) for _ in range(3)])
    tampered = [chain[0], mutate(chain[1], field), chain[2]]
    report = verify_chain(tampered)
    assert (report.ok, report.first_broken_seq) == (False, 2)


@PROPERTY
@given(chains, st.data())
def test_changing_a_records_seq_is_named(chain: list[AuditRecord], data: Any) -> None:
    index = data.draw(st.integers(0, len(chain) - 1), label="index")
    new_seq = data.draw(st.integers(0, len(chain) + 3), label="new_seq")
    assume(new_seq != chain[index].seq)
    tampered = list(chain)
    tampered[index] = dataclasses.replace(chain[index], seq=new_seq)
    report = verify_chain(tampered)
    assert not report.ok
    # Named by the position where the chain breaks: the seq that was expected there.
    assert report.first_broken_seq == chain[index].seq
    assert report.checked == index


@PROPERTY
@given(long_chains, st.data())
def test_deleting_a_record_names_the_missing_record(chain: list[AuditRecord], data: Any) -> None:
    index = data.draw(st.integers(0, len(chain) - 2), label="index")
    deleted = chain[index].seq
    tampered = chain[:index] + chain[index + 1 :]
    report = verify_chain(tampered)
    assert not report.ok
    assert report.first_broken_seq == deleted
    assert report.checked == index and report.head_seq == deleted - 1
    assert f"expected record {deleted}" in (report.problem or "")


@PROPERTY
@given(long_chains, st.data())
def test_swapping_two_records_names_the_first_position_out_of_place(
    chain: list[AuditRecord], data: Any
) -> None:
    i = data.draw(st.integers(0, len(chain) - 2), label="i")
    j = data.draw(st.integers(i + 1, len(chain) - 1), label="j")
    tampered = list(chain)
    tampered[i], tampered[j] = tampered[j], tampered[i]
    report = verify_chain(tampered)
    assert not report.ok
    assert report.first_broken_seq == chain[i].seq
    assert report.checked == i


@PROPERTY
@given(long_chains, entries, st.data())
def test_inserting_a_forged_record_is_detected(
    chain: list[AuditRecord], forged_entry: AuditEntry, data: Any
) -> None:
    """The forger seals the record correctly against its predecessor, but cannot re-hash
    the original records after it (that needs anchors, below)."""
    index = data.draw(st.integers(0, len(chain) - 1), label="index")
    renumber = data.draw(st.booleans(), label="renumber")
    prev = chain[index - 1].row_hash if index else GENESIS_HASH
    forged = seal(index + 1, chain[index].ts_utc, prev, forged_entry)
    assume(forged.row_hash != chain[index].row_hash)
    rest = chain[index:]
    if renumber:
        rest = [dataclasses.replace(r, seq=r.seq + 1) for r in rest]
    tampered = [*chain[:index], forged, *rest]
    report = verify_chain(tampered)
    assert not report.ok
    assert report.first_broken_seq == index + 2
    assert report.checked == index + 1


@PROPERTY
@given(long_chains, st.data())
def test_inserting_a_carelessly_forged_record_names_it(chain: list[AuditRecord], data: Any) -> None:
    index = data.draw(st.integers(0, len(chain) - 1), label="index")
    forged = AuditRecord(
        seq=index + 1,
        ts_utc=EPOCH,
        prev_hash=GENESIS_HASH,
        entry=AuditEntry(action="login.success"),
        row_hash="f" * 64,
    )
    report = verify_chain([*chain[:index], forged, *chain[index:]])
    assert not report.ok and report.first_broken_seq == index + 1


@PROPERTY
@given(long_chains, st.data())
def test_truncation_needs_an_anchor_and_is_then_named(chain: list[AuditRecord], data: Any) -> None:
    keep = data.draw(st.integers(0, len(chain) - 1), label="keep")
    anchored = data.draw(st.integers(keep + 1, len(chain)), label="anchored")
    truncated = chain[:keep]
    # Without an anchor a shorter chain is indistinguishable from an older one.
    assert verify_chain(truncated).ok
    anchors = {anchored: chain[anchored - 1].row_hash}
    if keep:
        anchors[keep] = chain[keep - 1].row_hash  # an anchor that still matches
    report = verify_chain(truncated, anchors)
    assert not report.ok
    assert report.first_broken_seq == anchored
    assert report.checked == keep
    assert "missing" in (report.problem or "")


# ---- anchors against a consistent rewrite -----------------------------------------------


def rewrite_from(chain: list[AuditRecord], index: int, entry: AuditEntry) -> list[AuditRecord]:
    """What a database superuser can do: change one record and re-seal everything after."""
    out = list(chain[:index])
    prev = chain[index - 1].row_hash if index else GENESIS_HASH
    for i, rec in enumerate(chain[index:], start=index):
        new = seal(rec.seq, rec.ts_utc, prev, entry if i == index else rec.entry)
        out.append(new)
        prev = new.row_hash
    return out


@PROPERTY
@given(chains, entries, st.data())
def test_anchors_detect_a_consistently_rehashed_rewrite(
    chain: list[AuditRecord], replacement: AuditEntry, data: Any
) -> None:
    index = data.draw(st.integers(0, len(chain) - 1), label="index")
    assume(replacement != chain[index].entry)
    rewritten = rewrite_from(chain, index, replacement)
    assert verify_chain(rewritten).ok  # the chain alone cannot tell
    anchor_seqs = data.draw(
        st.sets(st.integers(1, len(chain)), min_size=1).filter(lambda seqs: max(seqs) > index),
        label="anchor_seqs",
    )
    anchors = {s: chain[s - 1].row_hash for s in anchor_seqs}
    report = verify_chain(rewritten, anchors)
    assert not report.ok
    assert report.first_broken_seq == min(s for s in anchor_seqs if s > index)
    assert "anchor" in (report.problem or "")


def test_the_head_anchor_alone_catches_a_rewrite_anywhere() -> None:
    chain = build_chain([AuditEntry(action="project.create", actor_user_id=i) for i in range(6)])
    head = {chain[-1].seq: chain[-1].row_hash}
    for index in range(len(chain)):
        rewritten = rewrite_from(chain, index, AuditEntry(action="project.create"))
        assert verify_chain(rewritten).ok
        report = verify_chain(rewritten, head)
        assert (report.ok, report.first_broken_seq) == (False, 6)


# ---- canonical JSON ---------------------------------------------------------------------


@PROPERTY
@given(st.dictionaries(short_text, json_value, max_size=6))
def test_canonical_json_is_key_order_independent(value: dict[str, Any]) -> None:
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(x) for x in v]
        return v

    assert canonical_json(reverse(value)) == canonical_json(value)
    assert content_hash(reverse(value)) == content_hash(value)


def test_canonical_json_is_compact_sorted_utf8() -> None:
    value = {"z": 1, "a": {"y": [1, 2.5, None, True], "b": "Zürich \u2603"}}
    assert canonical_json(value) == (
        '{"a":{"b":"Zürich \u2603","y":[1,2.5,null,true]},"z":1}'.encode()
    )


def test_canonical_json_keeps_list_order() -> None:
    assert canonical_json([1, 2]) != canonical_json([2, 1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_json_rejects_nan_and_infinity(bad: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"value": bad})
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json([[{"deep": bad}]])
    with pytest.raises(ValueError, match="JSON compliant"):
        seal(1, EPOCH, GENESIS_HASH, AuditEntry(action="x", detail={"v": bad}))
