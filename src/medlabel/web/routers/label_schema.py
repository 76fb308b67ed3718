"""The project's versioned label schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from pydantic import Field

from medlabel.domain.labels import AnnotationKind, AttributeType
from medlabel.services import schemas
from medlabel.services.schemas import SchemaVersionView
from medlabel.web.api_models import ResponseModel, StrictModel, base_version, etag, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/projects/{slug}/schema", tags=["label schema"])
# Bounded so an absurd number is a 422, not an integer overflow in the database.
VersionNumber = Annotated[int, Path(ge=0, le=2_147_483_647)]


class CodedConceptIn(StrictModel):
    value: str = Field(min_length=1, max_length=64, examples=["27925004"])
    scheme: str = Field(min_length=1, max_length=16, examples=["SCT"])
    meaning: str = Field(min_length=1, max_length=64, examples=["Nodule"])


class AttributeIn(StrictModel):
    key: str | None = Field(default=None, max_length=64)
    name: str = Field(min_length=1, max_length=128)
    type: AttributeType
    required: bool = False
    options: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None, max_length=256
    )
    unit: str | None = Field(default=None, max_length=32, examples=["mm"])
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = Field(default=None, ge=1, le=100_000)
    default: str | float | bool | None = None


class LabelClassIn(StrictModel):
    key: str | None = Field(
        default=None, max_length=64, description="Stable id; derived from the name when omitted."
    )
    name: str = Field(min_length=1, max_length=128)
    value: int | None = Field(
        default=None, ge=1, le=65535, description="Label-map value; allocated when omitted."
    )
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#e6194b"])
    hotkey: str | None = Field(default=None, max_length=1)
    kinds: list[AnnotationKind] = Field(min_length=1, max_length=6)
    description: str = Field(default="", max_length=4000)
    attributes: list[AttributeIn] = Field(default_factory=list, max_length=64)
    segmented_property_category: CodedConceptIn | None = None
    segmented_property_type: CodedConceptIn | None = None


class SchemaIn(StrictModel):
    base_version: int | None = Field(
        default=None, ge=0, description="The version you edited (or If-Match)."
    )
    classes: list[LabelClassIn] = Field(max_length=1000)
    comment: str = Field(default="", max_length=2000)


class SchemaOut(ResponseModel):
    version: int
    classes: list[dict[str, Any]]
    comment: str
    created_at: str | None


class SchemaVersionSummary(ResponseModel):
    version: int
    classes: int
    comment: str
    created_at: str | None


def _out(view: SchemaVersionView) -> SchemaOut:
    return SchemaOut(
        version=view.version,
        classes=view.schema.to_dict()["classes"],
        comment=view.comment,
        created_at=iso(view.created_at),
    )


@router.get("", response_model=SchemaOut)
def get_schema(slug: str, actor: CurrentActor, ctx: Ctx, response: Response) -> SchemaOut:
    """The schema in force (version 0 with no classes before the first save)."""
    with ctx.db.read() as s:
        view = schemas.current(s, actor, slug)
    response.headers["ETag"] = etag(view.version)
    return _out(view)


@router.put("", response_model=SchemaOut)
def save_schema(
    slug: str,
    body: SchemaIn,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> SchemaOut:
    """Save an edited schema as a new version (project admins).

    Existing annotations keep the version they were made under. Class keys and label values
    are stable across versions; a stale base version gets 409 with the current version.
    """
    base = base_version(if_match, body.base_version)
    classes = [c.model_dump(exclude_none=True) for c in body.classes]
    with ctx.db.write() as s:
        view = schemas.save(
            s, actor, ctx.clock, slug, base_version=base, classes=classes, comment=body.comment
        )
    response.headers["ETag"] = etag(view.version)
    return _out(view)


@router.get("/versions", response_model=list[SchemaVersionSummary])
def list_versions(slug: str, actor: CurrentActor, ctx: Ctx) -> list[SchemaVersionSummary]:
    with ctx.db.read() as s:
        return [
            SchemaVersionSummary(
                version=v.version,
                classes=len(v.schema.classes),
                comment=v.comment,
                created_at=iso(v.created_at),
            )
            for v in schemas.list_versions(s, actor, slug)
        ]


@router.get("/versions/{version}", response_model=SchemaOut)
def get_version(
    slug: str, version: VersionNumber, actor: CurrentActor, ctx: Ctx, response: Response
) -> SchemaOut:
    with ctx.db.read() as s:
        view = schemas.get_version(s, actor, slug, version)
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return _out(view)
