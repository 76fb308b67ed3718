"""SQLAlchemy table mappings. The schema itself changes only through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# Timestamps are stored as UTC without a zone on both databases (UTC by convention).
Timestamp = DateTime(timezone=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    password_changed_at: Mapped[datetime] = mapped_column(Timestamp)


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WebSession(Base):
    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class LoginAttempt(Base):
    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_at", "key_hash", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(Timestamp)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class ProjectMember(Base):
    __tablename__ = "project_member"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(Timestamp)
    added_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class LabelSchemaVersion(Base):
    __tablename__ = "label_schema_version"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JsonType)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class GuidelineVersion(Base):
    __tablename__ = "guideline_version"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    body_md: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class GuidelineAsset(Base):
    __tablename__ = "guideline_asset"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class AuditEvent(Base):
    """Append-only; UPDATE and DELETE are refused by database triggers."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_project_seq", "project_id", "seq"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts_utc: Mapped[datetime] = mapped_column(Timestamp)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    session_id_hash: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent_hash: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[int] = mapped_column(Integer)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(128))
    project_id: Mapped[int | None] = mapped_column(Integer)
    before_hash: Mapped[str | None] = mapped_column(String(64))
    after_hash: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


# ---- imaging ---------------------------------------------------------------------------


class Patient(Base):
    """A pseudonymous patient; the pseudonym is a keyed hash of the original PatientID."""

    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("project_id", "pseudonym"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    pseudonym: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (UniqueConstraint("project_id", "study_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    study_uid: Mapped[str] = mapped_column(String(64))  # de-identified
    study_date: Mapped[str | None] = mapped_column(String(8))  # shifted, YYYYMMDD
    description: Mapped[str] = mapped_column(String(256), default="")  # cleaned
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Item(Base):
    """The unit of annotation: a volume, an image, a cine, a stack or a slide."""

    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("project_id", "content_key"),
        Index("ix_item_project_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    source_format: Mapped[str] = mapped_column(String(16))  # dicom, nifti, photo, slide
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    content_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ready, quarantined, superseded
    quarantine_reasons: Mapped[list[str]] = mapped_column(JsonType, default=list)
    flags: Mapped[list[str]] = mapped_column(JsonType, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    geometry: Mapped[dict[str, Any]] = mapped_column(JsonType)
    pixel: Mapped[dict[str, Any]] = mapped_column(JsonType)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    released_at: Mapped[datetime | None] = mapped_column(Timestamp)
    released_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class Instance(Base):
    """One de-identified DICOM instance (the stored file is a blob named by its SHA-256)."""

    __tablename__ = "instance"
    __table_args__ = (UniqueConstraint("project_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    blob_sha256: Mapped[str] = mapped_column(String(64))
    frames_sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    frames: Mapped[int] = mapped_column(Integer)
    info: Mapped[dict[str, Any]] = mapped_column(JsonType)
    quarantine_reasons: Mapped[list[str]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class IngestJob(Base):
    __tablename__ = "ingest_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, not enumerable
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    source: Mapped[str] = mapped_column(String(16))  # files, upload, dicomdir
    state: Mapped[str] = mapped_column(String(16))  # queued, running, done, failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, int]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class IngestFile(Base):
    """One file of an ingest job. Original names are PHI and are never stored: a file is
    known by its position in the job (and its size and hash)."""

    __tablename__ = "ingest_file"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("ingest_job.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="")
    outcome: Mapped[str] = mapped_column(
        String(16)
    )  # pending, ingested, duplicate, quarantined, rejected
    reason: Mapped[str | None] = mapped_column(Text)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("item.id", ondelete="SET NULL"))
    series_uid: Mapped[str | None] = mapped_column(String(64))  # de-identified, DICOM only


# ---- annotations -----------------------------------------------------------------------


class AnnotationSet(Base):
    """One author's annotations on one item (for one task). Its content lives only in
    immutable revisions; the set row itself never changes after it is created."""

    __tablename__ = "annotation_set"
    __table_args__ = (UniqueConstraint("item_id", "scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    owner_model: Mapped[str | None] = mapped_column(String(160))  # "name@version"
    task_id: Mapped[int | None] = mapped_column(Integer)
    # "user:<id>|task:<id or ->" or "model:<name@version>|task:-": one set per scope and item.
    scope_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class AnnotationRevision(Base):
    """An immutable save of a set: the whole shape document and the mask manifests.

    ``number`` counts from 1 within a set; (set_id, number) is unique, which is what makes
    optimistic concurrency safe: two saves built on the same revision both try to insert
    number n+1 and exactly one wins. UPDATE is refused by a trigger."""

    __tablename__ = "annotation_revision"
    __table_args__ = (UniqueConstraint("set_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("annotation_set.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    parent_number: Mapped[int] = mapped_column(Integer)  # 0 for the first revision
    restored_from: Mapped[int | None] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(16))  # shapes, mask, restore, interpolate
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    schema_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    duration_s: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType)
    shapes: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    masks: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    content_sha256: Mapped[str] = mapped_column(String(64))
