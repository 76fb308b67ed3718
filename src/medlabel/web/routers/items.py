"""Items and their pixels: metadata, raw frames, rendered frames, thumbnails, DZI tiles."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from medlabel.domain.errors import Conflict, InvalidInput, NotFound
from medlabel.services import imagery, items
from medlabel.services.items import ItemStatus
from medlabel.storage.models import Project, Study
from medlabel.web.api_models import ResponseModel, StrictModel
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(tags=["items"])
IMMUTABLE = "private, max-age=31536000, immutable"


class ItemPage(ResponseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class ReleaseIn(StrictModel):
    reason: str = Field(
        min_length=1,
        max_length=2000,
        description="Why the pixels are safe to show (required; audited).",
    )


def _not_modified(request: Request, tag: str) -> bool:
    return request.headers.get("if-none-match") == f'"{tag}"'


def _304(tag: str) -> Response:
    return Response(status_code=304, headers={"ETag": f'"{tag}"', "Cache-Control": IMMUTABLE})


def _cached(
    request: Request, tag: str, body: bytes, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    etag = f'"{tag}"'
    all_headers = {"ETag": etag, "Cache-Control": IMMUTABLE, **(headers or {})}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=all_headers)
    return Response(body, media_type=media_type, headers=all_headers)


@router.get("/api/projects/{slug}/items", response_model=ItemPage)
def list_items(
    slug: str,
    actor: CurrentActor,
    ctx: Ctx,
    status: Annotated[ItemStatus, Query()] = "ready",
    kind: Annotated[str | None, Query(pattern=r"^[a-z]{1,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ItemPage:
    """Items of a project. Quarantined items are listed only for those who may release them."""
    with ctx.db.read() as s:
        rows, total, access = items.list_items(
            s, actor, slug, status=status, kind=kind, limit=limit, offset=offset
        )
        return ItemPage(
            items=[items.view(i, project=access.project.slug) for i in rows],
            total=total,
            limit=limit,
            offset=offset,
        )


@router.get("/api/items/{item_id}")
def get_item(item_id: int, actor: CurrentActor, ctx: Ctx) -> dict[str, Any]:
    """Geometry (index -> patient mm), modality, photometrics, windows, frames and flags."""
    with ctx.db.read() as s:
        target = items.item_for(s, actor, _checked(item_id))
        study = s.get(Study, target.item.study_id) if target.item.study_id else None
        return items.view(target.item, study, project=target.access.project.slug)


@router.post("/api/items/{item_id}/release")
def release(item_id: int, body: ReleaseIn, actor: CurrentActor, ctx: Ctx) -> dict[str, Any]:
    """Release a quarantined item to annotators after checking its pixels (admins)."""
    with ctx.db.write() as s:
        item = items.release(s, actor, ctx.clock, _checked(item_id), body.reason)
        project = s.get(Project, item.project_id)
        released = items.view(item, project=project.slug if project else None)
    ctx.forget_access()
    return released


@router.get("/api/items/{item_id}/instances")
def list_instances(item_id: int, actor: CurrentActor, ctx: Ctx) -> list[dict[str, Any]]:
    """The item's de-identified DICOM instances (download each with ``.../dicom``)."""
    with ctx.db.read() as s:
        _, rows = items.instances(s, actor, _checked(item_id))
        return [
            {
                "index": n,
                "sop_instance_uid": r.sop_instance_uid,
                "sop_class_uid": r.sop_class_uid,
                "frames": r.frames,
                "size_bytes": r.size_bytes,
                "sha256": r.blob_sha256,
            }
            for n, r in enumerate(rows)
        ]


@router.get(
    "/api/items/{item_id}/instances/{index}/dicom",
    response_class=Response,
    responses={200: {"content": {"application/dicom": {}}}},
)
def instance_file(
    item_id: int, index: int, actor: CurrentActor, ctx: Ctx, request: Request
) -> Response:
    """One de-identified DICOM Part 10 file (released items only; audited as a read)."""
    with ctx.db.read() as s:
        target, rows = items.instances(s, actor, _checked(item_id))
    if not 0 <= index < len(rows):
        raise NotFound(f"Item {item_id} has instances 0 to {len(rows) - 1}, not {index}.")
    if target.item.status != "ready":
        raise Conflict(f"Item {item_id} is in quarantine: release it before downloading.")
    row = rows[index]
    if ctx.read_audit.first_read(actor, target.item.id):
        ctx.read_audit.record(
            actor, target.item.id, target.item.project_id, target.access.audit_role, "dicom"
        )
    body = ctx.blobs.read_bytes(row.blob_sha256)
    return _cached(
        request,
        row.blob_sha256,
        body,
        "application/dicom",
        {"Content-Disposition": f'attachment; filename="{row.sop_instance_uid}.dcm"'},
    )


def _checked(item_id: int) -> int:
    if not 1 <= item_id <= 2**31 - 1:
        raise InvalidInput("Item ids are positive integers.")
    return item_id


def _load(ctx: Any, actor: Any, item_id: int) -> tuple[imagery.OpenItem, int, str]:
    with ctx.db.read() as s:
        target = items.item_for(s, actor, _checked(item_id))
    item = target.item
    opened = imagery.OpenItem(
        item_id=item.id,
        content_key=item.content_key,
        pixel=item.pixel,
        geometry=item.geometry,
        kind=item.kind,
        modality=item.modality,
        source_sha256=item.source_sha256,
        blobs=ctx.blobs,
        cache_root=ctx.settings.resolved_data_dir() / "cache",
        slides=ctx.slides,
    )
    return opened, item.project_id, target.access.audit_role


async def _open(ctx: Any, actor: Any, item_id: int, what: str) -> imagery.OpenItem:
    """The item, if the actor may read it (cached briefly, see web/caches.py); the first
    read per hour is audited."""
    key = (actor.user_id, item_id)
    cached = ctx.item_access.get(key)
    if cached is None:
        cached = await run_in_threadpool(_load, ctx, actor, item_id)
        ctx.item_access.put(key, cached)
    opened, project_id, role = cached
    if ctx.read_audit.first_read(actor, item_id):
        await run_in_threadpool(ctx.read_audit.record, actor, item_id, project_id, role, what)
    return opened


@router.get(
    "/api/items/{item_id}/frames/{k}/raw",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def raw_frame(
    item_id: int, k: int, actor: CurrentActor, ctx: Ctx, request: Request
) -> Response:
    """One frame as little-endian values; shape and dtype in X-Shape and X-Dtype."""
    return await _raw_frame(ctx, actor, request, item_id, k)


async def _raw_frame(ctx: Any, actor: Any, request: Request, item_id: int, k: int) -> Response:
    item = await _open(ctx, actor, item_id, "raw")
    source = item.frames()
    tag = f"{item.content_key[:32]}-{k}-raw"
    if _not_modified(request, tag):
        return _304(tag)
    body = source.raw(k, 1)  # one pread of a frame: cheaper than a thread hop
    return _cached(request, tag, body, "application/octet-stream", imagery.raw_headers(source, 1))


async def raw_frame_fast(request: Request) -> Response:
    """The same endpoint without FastAPI's per-request machinery (dependency resolution,
    validation): a viewer asks for hundreds of frames a second. Mounted ahead of the
    documented route by the app factory; same checks, same answers."""
    from medlabel.web.deps import authenticate

    ctx = request.app.state.ctx
    actor = await authenticate(request, ctx)
    params = request.path_params
    return await _raw_frame(ctx, actor, request, params["item_id"], params["k"])


@router.get(
    "/api/items/{item_id}/frames/raw",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def raw_frames(
    item_id: int,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    start: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Consecutive frames in one response (prefetching a whole series): frame after frame."""
    item = await _open(ctx, actor, item_id, "raw")
    source = item.frames()
    n = count if count is not None else source.layout.frames - start
    tag = f"{item.content_key[:32]}-{start}-{n}-raw"
    if _not_modified(request, tag):
        return _304(tag)
    chunks = source.iter_raw(start, n)  # validates the range before anything is sent
    headers = {
        "ETag": f'"{tag}"',
        "Cache-Control": IMMUTABLE,
        "Content-Length": str(source.frame_bytes * n),
        **imagery.raw_headers(source, n),
    }
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.get(
    "/api/items/{item_id}/frames/{k}/rendered",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}},
)
async def rendered_frame(
    item_id: int,
    k: int,
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    window: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=r"^[a-z_ -]+$",
            description="Preset: soft_tissue, lung, bone, brain, "
            "mediastinum, liver, auto, or a header window",
        ),
    ] = None,
    center: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    width: Annotated[float | None, Query(gt=0, allow_inf_nan=False)] = None,
    fmt: Annotated[Literal["png", "jpeg", "webp"], Query(alias="format")] = "png",
    quality: Annotated[int, Query(ge=1, le=100)] = 90,
) -> Response:
    """A frame windowed for display (explicit center/width, or a preset) and encoded."""
    item = await _open(ctx, actor, item_id, "rendered")
    spec = imagery.WindowSpec.parse(window, center, width)
    tag = f"{item.content_key[:32]}-{k}-{spec.tag()}-{fmt}-{quality}"
    if _not_modified(request, tag):
        return _304(tag)
    body = await run_in_threadpool(item.render, k, spec, fmt, quality)
    return _cached(request, tag, body, f"image/{fmt}")


@router.get(
    "/api/items/{item_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def thumbnail(item_id: int, actor: CurrentActor, ctx: Ctx, request: Request) -> Response:
    item = await _open(ctx, actor, item_id, "thumbnail")
    body = await run_in_threadpool(item.thumbnail)
    return _cached(request, f"{item.content_key[:32]}-thumb", body, "image/jpeg")


@router.get("/api/items/{item_id}/dzi")
async def dzi(item_id: int, actor: CurrentActor, ctx: Ctx) -> dict[str, Any]:
    """Deep Zoom descriptor (JSON form) for slides and photos."""
    return (await _open(ctx, actor, item_id, "dzi")).dzi_descriptor()


@router.get(
    "/api/items/{item_id}/dzi/{level}/{tile}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def dzi_tile(
    item_id: int, level: int, tile: str, actor: CurrentActor, ctx: Ctx, request: Request
) -> Response:
    """One Deep Zoom tile, ``{col}_{row}.jpeg``; rendered on first use and cached."""
    col, row = imagery.parse_tile_name(tile)
    item = await _open(ctx, actor, item_id, "tile")
    body = await run_in_threadpool(item.dzi_tile, level, col, row)
    return _cached(request, f"{item.content_key[:32]}-{level}-{col}-{row}", body, "image/jpeg")
