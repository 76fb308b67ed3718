"""The project's versioned annotation guidelines and their images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from pydantic import Field

from medlabel.domain.errors import Unsupported
from medlabel.services import guidelines
from medlabel.services.guidelines import GuidelineView
from medlabel.web.api_models import ResponseModel, StrictModel, base_version, etag, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/projects/{slug}/guidelines", tags=["guidelines"])
# Bounded so an absurd number is a 422, not an integer overflow in the database.
VersionNumber = Annotated[int, Path(ge=0, le=2_147_483_647)]


class GuidelineIn(StrictModel):
    base_version: int | None = Field(default=None, ge=0)
    markdown: str = Field(min_length=1, max_length=guidelines.MAX_MARKDOWN_CHARS)
    comment: str = Field(default="", max_length=2000)


class GuidelineOut(ResponseModel):
    version: int
    markdown: str
    html: str = Field(description="Sanitised HTML rendering of the Markdown.")
    comment: str
    created_at: str | None


class GuidelineSummary(ResponseModel):
    version: int
    comment: str
    created_at: str | None


class AssetOut(ResponseModel):
    sha256: str
    media_type: str
    width: int
    height: int
    url: str
    markdown: str = Field(description="Paste this into the guidelines to show the image.")


def _out(slug: str, view: GuidelineView) -> GuidelineOut:
    prefix = f"/api/projects/{slug}/guidelines/assets/"
    return GuidelineOut(
        version=view.version,
        markdown=view.markdown,
        html=guidelines.render_html(view.markdown, prefix),
        comment=view.comment,
        created_at=iso(view.created_at),
    )


@router.get("", response_model=GuidelineOut)
def get_guidelines(slug: str, actor: CurrentActor, ctx: Ctx, response: Response) -> GuidelineOut:
    """The guidelines in force (version 0 and empty before the first save)."""
    with ctx.db.read() as s:
        view = guidelines.current(s, actor, slug)
    response.headers["ETag"] = etag(view.version)
    return _out(slug, view)


@router.put("", response_model=GuidelineOut)
def save_guidelines(
    slug: str,
    body: GuidelineIn,
    actor: CurrentActor,
    ctx: Ctx,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> GuidelineOut:
    """Save new guidelines as the next version (project admins)."""
    base = base_version(if_match, body.base_version)
    with ctx.db.write() as s:
        view = guidelines.save(
            s,
            actor,
            ctx.clock,
            slug,
            base_version=base,
            markdown=body.markdown,
            comment=body.comment,
        )
    response.headers["ETag"] = etag(view.version)
    return _out(slug, view)


@router.get("/versions", response_model=list[GuidelineSummary])
def list_versions(slug: str, actor: CurrentActor, ctx: Ctx) -> list[GuidelineSummary]:
    with ctx.db.read() as s:
        return [
            GuidelineSummary(version=v.version, comment=v.comment, created_at=iso(v.created_at))
            for v in guidelines.list_versions(s, actor, slug)
        ]


@router.get("/versions/{version}", response_model=GuidelineOut)
def get_version(slug: str, version: VersionNumber, actor: CurrentActor, ctx: Ctx) -> GuidelineOut:
    with ctx.db.read() as s:
        return _out(slug, guidelines.get_version(s, actor, slug, version))


@router.post(
    "/assets",
    response_model=AssetOut,
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/gif": {}},
            "required": True,
        }
    },
)
async def upload_asset(slug: str, request: Request, actor: CurrentActor, ctx: Ctx) -> AssetOut:
    """Upload an image for the guidelines (raw body, Content-Type image/*).

    The image is re-encoded without its metadata; reference it as ``asset:<sha256>``.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        raise Unsupported(
            "Send the image as the raw request body with Content-Type image/png, "
            "image/jpeg, image/webp or image/gif."
        )
    data = await request.body()
    from starlette.concurrency import run_in_threadpool

    def store() -> AssetOut:
        with ctx.db.write() as s:
            asset = guidelines.add_asset(s, actor, ctx.clock, ctx.blobs, slug, data)
            return AssetOut(
                sha256=asset.sha256,
                media_type=asset.media_type,
                width=asset.width,
                height=asset.height,
                url=f"/api/projects/{slug}/guidelines/assets/{asset.sha256}",
                markdown=f"![image](asset:{asset.sha256})",
            )

    return await run_in_threadpool(store)


@router.get(
    "/assets/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
)
def get_asset(slug: str, sha256: str, actor: CurrentActor, ctx: Ctx, request: Request) -> Response:
    with ctx.db.read() as s:
        asset = guidelines.get_asset(s, actor, slug, sha256.lower())
    tag = f'"{asset.sha256}"'
    headers = {"ETag": tag, "Cache-Control": "private, max-age=31536000, immutable"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(
        ctx.blobs.read_bytes(asset.sha256), media_type=asset.media_type, headers=headers
    )
