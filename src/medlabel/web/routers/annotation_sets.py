"""Annotation sets: shapes (JSON), masks (binary), history, diff, restore, measurements.

Every save needs the revision it builds on (``If-Match: "v<n>"`` from the ETag you read,
or ``base_revision`` in JSON bodies; 0 for an empty set) and answers 409 with the current
revision when the set has moved on. Saves answer 201 with the new revision's ETag, or 200
when the content was identical to the head (nothing new is stored).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from medlabel.domain import masks as mask_codec
from medlabel.domain.errors import Unsupported
from medlabel.services import annotation_masks
from medlabel.services import annotation_sets as sets
from medlabel.services.annotation_masks import MaskWrite
from medlabel.web.api_models import StrictModel, base_version, etag
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["annotations"])
IMMUTABLE = "private, max-age=31536000, immutable"
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
MaskId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
RevisionQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]
MASK_TYPES = ("application/octet-stream",)


class ModelIn(StrictModel):
    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)


class OpenSetIn(StrictModel):
    model: ModelIn | None = Field(
        default=None, description="Open a model's set (pre-annotations; project admins)."
    )


class ShapesIn(StrictModel):
    annotations: list[dict[str, Any]] = Field(
        max_length=10_000, description="The whole shape document of the set (replaces it)."
    )
    schema_version: int | None = Field(
        default=None, ge=1, description="Label schema version (default: the one in force)."
    )
    duration_s: float | None = Field(default=None, ge=0, le=86_400)
    comment: str | None = Field(default=None, max_length=2000)
    base_revision: int | None = Field(default=None, ge=0)


class RestoreIn(StrictModel):
    comment: str | None = Field(default=None, max_length=2000)
    base_revision: int | None = Field(default=None, ge=0)


class InterpolateIn(StrictModel):
    value: int = Field(ge=1, le=65535, description="The label value to interpolate.")
    key_slices: list[int] | None = Field(
        default=None,
        max_length=10_000,
        description="Slices to interpolate between (default: every slice holding the value).",
    )
    base_revision: int | None = Field(default=None, ge=0)


def _saved(response: Response, body: dict[str, Any], revision: int, created: bool) -> None:
    response.status_code = 201 if created else 200
    response.headers["ETag"] = etag(revision)
    body["created"] = created


@router.get("/api/items/{item_id}/annotations")
def item_annotations(item_id: Id, actor: CurrentActor, ctx: Ctx) -> dict[str, Any]:
    """Every annotation set of the item you may see with its newest shapes, mask
    descriptions and measurements, in one response (what the viewer loads)."""
    with ctx.db.read() as s:
        return sets.item_bulk(s, actor, item_id)


@router.post("/api/items/{item_id}/annotation-sets", status_code=201)
def open_set(
    item_id: Id, actor: CurrentActor, ctx: Ctx, response: Response, body: OpenSetIn | None = None
) -> dict[str, Any]:
    """Your annotation set on the item, created if needed (201 when created, else 200)."""
    model = body.model.model_dump() if body and body.model else None
    with ctx.db.write() as s:
        view, created = sets.open_set(s, actor, ctx.clock, item_id, model=model)
    response.status_code = 201 if created else 200
    response.headers["ETag"] = etag(view["revision"])
    return view


@router.get("/api/annotation-sets/{set_id}")
def get_set(
    set_id: Id,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    response: Response,
    revision: RevisionQuery = None,
) -> Any:
    """The set's shapes and masks at its newest revision (or at ``revision``)."""
    with ctx.db.read() as s:
        _, body = sets.content(s, actor, set_id, revision)
    number = int(body["revision"])
    tag = etag(number)
    headers = {"ETag": tag}
    if revision is not None:
        headers["Cache-Control"] = IMMUTABLE
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return body


@router.put("/api/annotation-sets/{set_id}/annotations", status_code=201)
def save_shapes(
    set_id: Id,
    body: ShapesIn,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Save the set's whole shape document as a new revision (masks carry over)."""
    base = base_version(if_match, body.base_revision)
    saved = sets.save_shapes(
        ctx.db,
        actor,
        ctx.clock,
        set_id,
        base=base,
        document={"annotations": body.annotations},
        schema_version=body.schema_version,
        duration_s=body.duration_s,
        comment=body.comment,
    )
    rev, created = saved.revision, saved.created
    out = {
        "set_id": set_id,
        "revision": rev.number,
        "summary": rev.summary,
        "measurements": saved.measurements,
    }
    _saved(response, out, rev.number, created)
    return out


@router.get("/api/annotation-sets/{set_id}/revisions")
def list_revisions(set_id: Id, actor: CurrentActor, ctx: Ctx) -> list[dict[str, Any]]:
    """The history of the set, oldest first (who, when, how long, what changed)."""
    with ctx.db.read() as s:
        return sets.history(s, actor, set_id)


@router.get("/api/annotation-sets/{set_id}/diff")
def diff(
    set_id: Id,
    actor: CurrentActor,
    ctx: Ctx,
    from_: Annotated[int, Query(alias="from", ge=0, le=2**31 - 1)],
    to: Annotated[int, Query(ge=0, le=2**31 - 1)],
) -> dict[str, Any]:
    """Shapes added, removed and changed (before/after) and masks changed between two
    revisions (0 is the empty set)."""
    with ctx.db.read() as s:
        return sets.diff(s, actor, set_id, from_, to)


@router.post("/api/annotation-sets/{set_id}/revisions/{number}/restore", status_code=201)
def restore(
    set_id: Id,
    number: Id,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    body: RestoreIn | None = None,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Make an old revision's content the newest revision (history is kept)."""
    base = base_version(if_match, body.base_revision if body else None)
    with ctx.db.write() as s:
        _, rev = sets.restore(
            s, actor, ctx.clock, set_id, number, base=base, comment=body.comment if body else None
        )
        out = {"set_id": set_id, "revision": rev.number, "summary": rev.summary}
    _saved(response, out, rev.number, True)
    return out


# ---- masks -------------------------------------------------------------------------------


def _mask_out(set_id: int, rev: Any, changed: list[int]) -> dict[str, Any]:
    return {
        "set_id": set_id,
        "revision": rev.number,
        "summary": rev.summary,
        "changed_slices": changed,
        "masks": [sets.public_mask(m) for m in rev.masks],
    }


@router.put(
    "/api/annotation-sets/{set_id}/masks/{mask_id}",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_mask(
    set_id: Id,
    mask_id: MaskId,
    request: Request,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    start: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    count: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    encoding: Annotated[Literal["raw", "zlib", "rle"], Query()] = "zlib",
    dtype: Annotated[Literal["uint8", "uint16"] | None, Query()] = None,
    mask_type: Annotated[Literal["semantic", "instance"] | None, Query(alias="type")] = None,
    label: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    downsample: Annotated[int | None, Query(ge=1, le=256)] = None,
    duration_s: Annotated[float | None, Query(ge=0, le=86_400)] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Write slices ``start .. start+count-1`` of a mask (all slices from ``start`` when
    ``count`` is left out); the body is the slices in (slice, row, column) order as
    little-endian ``dtype``, encoded as ``raw``, ``zlib`` or ``rle`` (uint32 pairs of value
    and run length). A new mask is created with ``type``, ``label`` (instance masks),
    ``dtype`` and ``downsample``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in MASK_TYPES:
        raise Unsupported("Send mask data as application/octet-stream.")
    base = base_version(if_match, None)
    body = await request.body()
    write = MaskWrite(
        mask_id=mask_id,
        start=start,
        count=count,
        encoding=encoding,
        body=body,
        mask_type=mask_type,
        label=label,
        dtype=dtype,
        downsample=downsample,
        duration_s=duration_s,
    )
    _, rev, created, changed = await run_in_threadpool(
        annotation_masks.save_slices, ctx.db, ctx.blobs, actor, ctx.clock, set_id, base, write
    )
    out = _mask_out(set_id, rev, changed)
    _saved(response, out, rev.number, created)
    return out


@router.get(
    "/api/annotation-sets/{set_id}/masks/{mask_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_mask(
    set_id: Id,
    mask_id: MaskId,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    start: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    count: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    encoding: Annotated[Literal["raw", "zlib", "rle"], Query()] = "zlib",
    revision: RevisionQuery = None,
) -> Response:
    """Slices of a mask as binary (same layout and encodings as the upload); the shape,
    dtype and revision are in ``X-Mask-*`` headers."""
    _, rev, entry = annotation_masks.mask_at(ctx.db, actor, set_id, mask_id, revision)
    tag = f'"{entry["manifest"]}-{start}-{count or "all"}-{encoding}"'
    headers = {
        "ETag": tag,
        "Cache-Control": IMMUTABLE if revision is not None else "private, no-cache",
        "X-Mask-Revision": str(rev.number),
        "X-Mask-Dtype": str(entry["dtype"]),
        "X-Mask-Downsample": str(entry.get("downsample", 1)),
    }
    block = annotation_masks.read_block(ctx.blobs, entry, start, count)
    headers["X-Mask-Shape"] = ",".join(str(n) for n in block.shape)
    headers["X-Mask-Start"] = str(start)
    headers["X-Mask-Encoding"] = encoding
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(
        mask_codec.encode_block(block, encoding, level=1),
        media_type="application/octet-stream",
        headers=headers,
    )


@router.delete("/api/annotation-sets/{set_id}/masks/{mask_id}")
def delete_mask(
    set_id: Id,
    mask_id: MaskId,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Remove a mask from the set (a new revision; older revisions keep it)."""
    base = base_version(if_match, None)
    _, rev, created, changed = annotation_masks.delete_mask(
        ctx.db, ctx.blobs, actor, ctx.clock, set_id, base, mask_id
    )
    out = _mask_out(set_id, rev, changed)
    _saved(response, out, rev.number, created)
    return out


@router.post("/api/annotation-sets/{set_id}/masks/{mask_id}/interpolate", status_code=201)
def interpolate(
    set_id: Id,
    mask_id: MaskId,
    body: InterpolateIn,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Fill the slices between key slices of one label by shape-based interpolation
    (signed distance, linear along the slices); only background voxels are written."""
    base = base_version(if_match, body.base_revision)
    _, rev, created, changed = annotation_masks.interpolate(
        ctx.db,
        ctx.blobs,
        actor,
        ctx.clock,
        set_id,
        base,
        mask_id,
        value=body.value,
        key_slices=body.key_slices,
    )
    out = _mask_out(set_id, rev, changed)
    _saved(response, out, rev.number, created)
    return out


@router.get("/api/annotation-sets/{set_id}/masks/{mask_id}/contours")
def mask_contours(
    set_id: Id,
    mask_id: MaskId,
    actor: CurrentActor,
    ctx: Ctx,
    slice_: Annotated[int, Query(alias="slice", ge=0, le=2**31 - 1)],
    revision: RevisionQuery = None,
) -> dict[str, Any]:
    """Outlines of each label on one slice as polygons with holes (index coordinates)."""
    access, rev, entry = annotation_masks.mask_at(ctx.db, actor, set_id, mask_id, revision)
    shape = access.item_access.item.geometry["shape"]
    return {
        "revision": rev.number,
        "slice": slice_,
        "polygons": annotation_masks.contours(ctx.blobs, entry, slice_, shape),
    }


@router.get("/api/annotation-sets/{set_id}/masks/{mask_id}/statistics")
def mask_statistics(
    set_id: Id,
    mask_id: MaskId,
    actor: CurrentActor,
    ctx: Ctx,
    revision: RevisionQuery = None,
) -> dict[str, Any]:
    """Per label: voxels, volume in mL, bounding box, centroid and intensity statistics
    (HU for CT)."""
    access, rev, entry = annotation_masks.mask_at(ctx.db, actor, set_id, mask_id, revision)
    item = access.item_access.item
    stats = annotation_masks.statistics(ctx.blobs, item.pixel, item.geometry, item.flags, entry)
    return {"revision": rev.number, "mask": mask_id, **stats}
