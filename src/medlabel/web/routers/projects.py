"""Projects and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from medlabel.domain.roles import Role
from medlabel.services import guidelines, projects, schemas
from medlabel.services.access import project_for
from medlabel.services.projects import ProjectSort
from medlabel.storage.models import Project
from medlabel.web.api_models import ResponseModel, StrictModel, iso
from medlabel.web.deps import Ctx, CurrentActor

router = APIRouter(prefix="/api/projects", tags=["projects"])


class ProjectIn(StrictModel):
    slug: str = Field(min_length=1, max_length=64, examples=["chest-ct"])
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=10000)


class ProjectPatch(StrictModel):
    name: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=10000)


class ProjectOut(ResponseModel):
    slug: str
    name: str
    description: str
    created_at: str | None
    my_role: Role
    schema_version: int | None = None
    guideline_version: int | None = None


class ProjectPage(ResponseModel):
    items: list[ProjectOut]
    total: int
    limit: int
    offset: int


class MemberIn(StrictModel):
    role: Role


class MemberOut(ResponseModel):
    username: str
    display_name: str
    role: Role
    added_at: str | None


def _out(project: Project, role: Role, **extra: int) -> ProjectOut:
    return ProjectOut(
        slug=project.slug,
        name=project.name,
        description=project.description,
        created_at=iso(project.created_at),
        my_role=role,
        **extra,
    )


@router.get("", response_model=ProjectPage)
def list_projects(
    actor: CurrentActor,
    ctx: Ctx,
    q: Annotated[str | None, Query(max_length=128, description="Text in name or slug")] = None,
    sort: Annotated[
        ProjectSort, Query(description="Field to sort by; '-' for descending")
    ] = "name",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ProjectPage:
    """Projects you are a member of (site admins see all)."""
    with ctx.db.read() as s:
        rows, total = projects.list_projects(s, actor, q=q, sort=sort, limit=limit, offset=offset)
        ids = [r.project.id for r in rows]
        schema_versions = schemas.latest_versions(s, ids)
        guideline_versions = guidelines.latest_versions(s, ids)
        items = [
            _out(
                r.project,
                r.role,
                schema_version=schema_versions.get(r.project.id, 0),
                guideline_version=guideline_versions.get(r.project.id, 0),
            )
            for r in rows
        ]
        return ProjectPage(items=items, total=total, limit=limit, offset=offset)


@router.post("", response_model=ProjectOut, status_code=201)
def create_project(body: ProjectIn, actor: CurrentActor, ctx: Ctx) -> ProjectOut:
    """Create a project (site admins); you become its admin."""
    with ctx.db.write() as s:
        project = projects.create_project(
            s, actor, ctx.clock, slug=body.slug, name=body.name, description=body.description
        )
        return _out(project, Role.ADMIN, schema_version=0, guideline_version=0)


@router.get("/{slug}", response_model=ProjectOut)
def get_project(slug: str, actor: CurrentActor, ctx: Ctx) -> ProjectOut:
    with ctx.db.read() as s:
        access = project_for(s, actor, slug)
        pid = access.project.id
        return _out(
            access.project,
            access.role,
            schema_version=schemas.current_version_number(s, pid),
            guideline_version=guidelines.current_version_number(s, pid),
        )


@router.patch("/{slug}", response_model=ProjectOut)
def update_project(slug: str, body: ProjectPatch, actor: CurrentActor, ctx: Ctx) -> ProjectOut:
    with ctx.db.write() as s:
        access = projects.update_project(
            s, actor, ctx.clock, slug, name=body.name, description=body.description
        )
        return _out(access.project, access.role)


@router.get("/{slug}/members", response_model=list[MemberOut])
def list_members(slug: str, actor: CurrentActor, ctx: Ctx) -> list[MemberOut]:
    with ctx.db.read() as s:
        return [
            MemberOut(
                username=m.username,
                display_name=m.display_name,
                role=m.role,
                added_at=iso(m.added_at),
            )
            for m in projects.list_members(s, actor, slug)
        ]


@router.put("/{slug}/members/{username}", response_model=MemberOut)
def set_member(
    slug: str, username: str, body: MemberIn, actor: CurrentActor, ctx: Ctx
) -> MemberOut:
    """Add a user to the project or change their role (project admins)."""
    with ctx.db.write() as s:
        m = projects.set_member(s, actor, ctx.clock, slug, username, body.role)
    ctx.forget_access()
    return MemberOut(
        username=m.username, display_name=m.display_name, role=m.role, added_at=iso(m.added_at)
    )


@router.delete("/{slug}/members/{username}", status_code=204)
def remove_member(slug: str, username: str, actor: CurrentActor, ctx: Ctx) -> Response:
    with ctx.db.write() as s:
        projects.remove_member(s, actor, ctx.clock, slug, username)
    ctx.forget_access()
    return Response(status_code=204)
