"""Versioned annotation guidelines (Markdown with images) of a project.

Images are uploaded as assets, re-encoded (which drops EXIF and any other metadata), stored
content-addressed and referenced from the Markdown as ``asset:<sha256>``. Markdown is
rendered with raw HTML disabled and the result sanitised again, so a guideline cannot run
script in an annotator's browser.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import nh3
from markdown_it import MarkdownIt
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain.audit import content_hash
from medlabel.domain.errors import Conflict, InvalidInput, NotFound, TooLarge, Unsupported
from medlabel.domain.names import clean_text
from medlabel.domain.roles import Permission
from medlabel.services import audit
from medlabel.services.access import project_for
from medlabel.services.actor import Actor, Clock
from medlabel.storage.blobs import BlobStore
from medlabel.storage.models import GuidelineAsset, GuidelineVersion

MAX_MARKDOWN_CHARS = 200_000
MAX_ASSET_BYTES = 10 * 1024 * 1024
MAX_ASSET_PIXELS = 40_000_000
_ASSET_REF = re.compile(r"asset:([0-9a-f]{64})")
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/png"}


@dataclass(frozen=True)
class GuidelineView:
    version: int
    markdown: str
    comment: str
    created_at: datetime | None
    created_by: int | None


EMPTY = GuidelineView(
    version=0, markdown="", comment="no guidelines yet", created_at=None, created_by=None
)


def _view(row: GuidelineVersion) -> GuidelineView:
    return GuidelineView(
        version=row.version,
        markdown=row.body_md,
        comment=row.comment,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def render_html(markdown: str, asset_url_prefix: str) -> str:
    """Markdown -> sanitised HTML; ``asset:<sha>`` image links point at the asset endpoint."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    html = md.render(_ASSET_REF.sub(lambda m: f"{asset_url_prefix}{m.group(1)}", markdown))
    return str(
        nh3.clean(
            html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow"
        )
    )


def current_version_number(session: Session, project_id: int) -> int:
    return (
        session.scalar(
            select(func.max(GuidelineVersion.version)).where(
                GuidelineVersion.project_id == project_id
            )
        )
        or 0
    )


def current(session: Session, actor: Actor, slug: str) -> GuidelineView:
    access = project_for(session, actor, slug)
    row = session.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == access.project.id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )
    return _view(row) if row else EMPTY


def get_version(session: Session, actor: Actor, slug: str, version: int) -> GuidelineView:
    access = project_for(session, actor, slug)
    row = session.scalar(
        select(GuidelineVersion).where(
            GuidelineVersion.project_id == access.project.id, GuidelineVersion.version == version
        )
    )
    if row is None:
        raise NotFound(f"Project {slug!r} has no guideline version {version}.")
    return _view(row)


def list_versions(session: Session, actor: Actor, slug: str) -> list[GuidelineView]:
    access = project_for(session, actor, slug)
    rows = session.scalars(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == access.project.id)
        .order_by(GuidelineVersion.version)
    )
    return [_view(r) for r in rows]


def save(
    session: Session,
    actor: Actor,
    clock: Clock,
    slug: str,
    *,
    base_version: int,
    markdown: str,
    comment: str = "",
) -> GuidelineView:
    access = project_for(session, actor, slug, Permission.GUIDELINE_EDIT)
    project_id = access.project.id
    latest = current_version_number(session, project_id)
    if base_version != latest:
        raise Conflict(
            f"The guidelines of {slug!r} are at version {latest}, but your edit was based on "
            f"version {base_version}. Reload, merge your change and save again.",
            extra={"current_version": latest},
        )
    markdown = clean_text(
        markdown, field="markdown", max_len=MAX_MARKDOWN_CHARS, min_len=1, multiline=True
    )
    missing = sorted(
        set(_ASSET_REF.findall(markdown))
        - set(
            session.scalars(
                select(GuidelineAsset.sha256).where(GuidelineAsset.project_id == project_id)
            )
        )
    )
    if missing:
        raise InvalidInput(
            f"The guidelines refer to {len(missing)} image(s) that were not uploaded to this "
            f"project (e.g. asset:{missing[0]}); upload them first.",
            errors=[{"field": "markdown", "problem": "unknown_asset", "sha256": missing[0]}],
        )
    comment = clean_text(comment, field="comment", max_len=2000, min_len=0, multiline=True)
    row = GuidelineVersion(
        project_id=project_id,
        version=latest + 1,
        body_md=markdown,
        comment=comment,
        created_by=actor.user_id,
        created_at=clock(),
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"The guidelines of {slug!r} changed while you saved; reload.") from exc
    audit.record(
        session,
        audit.entry(
            actor,
            "guideline.version.create",
            role=access.audit_role,
            object_type="guideline",
            object_id=f"{project_id}:v{row.version}",
            project_id=project_id,
            after_hash=content_hash(markdown),
            detail={"version": row.version},
        ),
        clock,
    )
    return _view(row)


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    media_type: str
    width: int
    height: int


def clean_image(data: bytes) -> CleanImage:
    """Decode an uploaded image with limits and re-encode it without metadata."""
    if len(data) > MAX_ASSET_BYTES:
        raise TooLarge(f"The image is {len(data)} bytes; the limit is {MAX_ASSET_BYTES}.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                if fmt not in _FORMATS:
                    raise Unsupported("Guideline images must be PNG, JPEG, WebP or GIF.")
                if img.width * img.height > MAX_ASSET_PIXELS:
                    raise TooLarge(
                        f"The image has {img.width}x{img.height} pixels; the limit "
                        f"is {MAX_ASSET_PIXELS} pixels."
                    )
                img.load()
                out = io.BytesIO()
                if fmt == "JPEG":
                    img.convert("RGB").save(out, "JPEG", quality=92)
                else:
                    converted = (
                        img if img.mode in ("RGB", "RGBA", "L", "LA") else img.convert("RGBA")
                    )
                    converted.save(out, "PNG" if fmt != "WEBP" else "WEBP", lossless=True)
                return CleanImage(
                    data=out.getvalue(),
                    media_type=_FORMATS[fmt],
                    width=img.width,
                    height=img.height,
                )
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise TooLarge("The image declares too many pixels (decompression bomb).") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise Unsupported("The upload is not a readable PNG, JPEG, WebP or GIF image.") from exc


def add_asset(
    session: Session, actor: Actor, clock: Clock, blobs: BlobStore, slug: str, data: bytes
) -> GuidelineAsset:
    access = project_for(session, actor, slug, Permission.GUIDELINE_EDIT)
    image = clean_image(data)
    sha = blobs.put_bytes(image.data)
    existing = session.scalar(
        select(GuidelineAsset).where(
            GuidelineAsset.project_id == access.project.id, GuidelineAsset.sha256 == sha
        )
    )
    if existing is not None:
        return existing
    asset = GuidelineAsset(
        project_id=access.project.id,
        sha256=sha,
        media_type=image.media_type,
        size_bytes=len(image.data),
        width=image.width,
        height=image.height,
        created_by=actor.user_id,
        created_at=clock(),
    )
    session.add(asset)
    session.flush()
    audit.record(
        session,
        audit.entry(
            actor,
            "guideline.asset.create",
            role=access.audit_role,
            object_type="guideline_asset",
            object_id=sha,
            project_id=access.project.id,
        ),
        clock,
    )
    return asset


def get_asset(session: Session, actor: Actor, slug: str, sha256: str) -> GuidelineAsset:
    access = project_for(session, actor, slug)
    # Only a SHA-256 can name an asset (and PostgreSQL would refuse a NUL in the query).
    asset = (
        session.scalar(
            select(GuidelineAsset).where(
                GuidelineAsset.project_id == access.project.id, GuidelineAsset.sha256 == sha256
            )
        )
        if re.fullmatch(r"[0-9a-f]{64}", sha256)
        else None
    )
    if asset is None:
        raise NotFound(f"Project {slug!r} has no guideline image {sha256[:16]}...")
    return asset


def latest_versions(session: Session, project_ids: Sequence[int]) -> dict[int, int]:
    """The current guideline version of each project (absent: no guidelines yet)."""
    rows = session.execute(
        select(GuidelineVersion.project_id, func.max(GuidelineVersion.version))
        .where(GuidelineVersion.project_id.in_(project_ids))
        .group_by(GuidelineVersion.project_id)
    ).all()
    return {pid: int(v) for pid, v in rows}
