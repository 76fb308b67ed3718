"""Projects and their members."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medlabel.domain.errors import Conflict, InvalidInput
from medlabel.domain.names import check_slug, clean_text
from medlabel.domain.roles import Permission, Role
from medlabel.services import audit
from medlabel.services.access import ProjectAccess, member_role, project_for
from medlabel.services.actor import Actor, Clock
from medlabel.services.users import get_by_username, require_site_admin
from medlabel.storage.models import Project, ProjectMember, User

ProjectSort = Literal["name", "-name", "slug", "-slug", "created_at", "-created_at"]
_SORT_COLUMNS = {"name": Project.name, "slug": Project.slug, "created_at": Project.created_at}


@dataclass(frozen=True)
class ProjectRow:
    project: Project
    role: Role


def create_project(
    session: Session,
    actor: Actor,
    clock: Clock,
    *,
    slug: str,
    name: str,
    description: str = "",
    owner: str | None = None,
) -> Project:
    """Create a project; the creator (or ``owner``) becomes its first admin."""
    require_site_admin(actor)
    slug = check_slug(slug.strip())
    name = clean_text(name, field="name", max_len=128)
    description = clean_text(
        description, field="description", max_len=10000, min_len=0, multiline=True
    )
    if session.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        raise Conflict(f"A project with slug {slug!r} exists already; choose another slug.")
    now = clock()
    project = Project(
        slug=slug, name=name, description=description, created_at=now, created_by=actor.user_id
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A project with slug {slug!r} exists already.") from exc
    audit.record(
        session,
        audit.entry(
            actor,
            "project.create",
            object_type="project",
            object_id=project.id,
            project_id=project.id,
        ),
        clock,
    )
    admin_id = get_by_username(session, owner).id if owner else actor.user_id
    if admin_id is not None:
        _add_member(session, actor, clock, project, admin_id, Role.ADMIN, "site-admin")
    return project


def list_projects(
    session: Session, actor: Actor, *, q: str | None, sort: ProjectSort, limit: int, offset: int
) -> tuple[list[ProjectRow], int]:
    """Projects the actor is a member of (all projects for site admins)."""
    role_col = ProjectMember.role
    query = select(Project, role_col).outerjoin(
        ProjectMember,
        (ProjectMember.project_id == Project.id) & (ProjectMember.user_id == actor.user_id),
    )
    if not actor.is_admin:
        query = query.where(ProjectMember.user_id.is_not(None))
    if q:
        q = clean_text(q, field="q", max_len=128, min_len=0)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(Project.name.ilike(pattern, escape="\\"), Project.slug.ilike(pattern, escape="\\"))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    column = _SORT_COLUMNS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = session.execute(query.order_by(order, Project.id).limit(limit).offset(offset)).all()
    return [ProjectRow(project=p, role=Role(r) if r else Role.ADMIN) for p, r in rows], total


def update_project(
    session: Session,
    actor: Actor,
    clock: Clock,
    slug: str,
    *,
    name: str | None,
    description: str | None,
) -> ProjectAccess:
    access = project_for(session, actor, slug, Permission.PROJECT_MANAGE)
    project = access.project
    changed = []
    if name is not None:
        project.name = clean_text(name, field="name", max_len=128)
        changed.append("name")
    if description is not None:
        project.description = clean_text(
            description, field="description", max_len=10000, min_len=0, multiline=True
        )
        changed.append("description")
    if changed:
        audit.record(
            session,
            audit.entry(
                actor,
                "project.update",
                role=access.audit_role,
                object_type="project",
                object_id=project.id,
                project_id=project.id,
                detail={"fields": changed},
            ),
            clock,
        )
    return access


@dataclass(frozen=True)
class MemberRow:
    username: str
    display_name: str
    role: Role
    added_at: datetime


def list_members(session: Session, actor: Actor, slug: str) -> list[MemberRow]:
    access = project_for(session, actor, slug, Permission.PROJECT_READ)
    rows = session.execute(
        select(User.username, User.display_name, ProjectMember.role, ProjectMember.added_at)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == access.project.id)
        .order_by(User.username)
    ).all()
    return [MemberRow(username=u, display_name=d, role=Role(r), added_at=a) for u, d, r, a in rows]


def _admin_count(session: Session, project_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                ProjectMember.project_id == project_id, ProjectMember.role == Role.ADMIN.value
            )
        )
        or 0
    )


def _add_member(
    session: Session,
    actor: Actor,
    clock: Clock,
    project: Project,
    user_id: int,
    role: Role,
    audit_role: str,
) -> None:
    session.add(
        ProjectMember(
            project_id=project.id,
            user_id=user_id,
            role=role.value,
            added_at=clock(),
            added_by=actor.user_id,
        )
    )
    session.flush()
    audit.record(
        session,
        audit.entry(
            actor,
            "project.member.add",
            role=audit_role,
            object_type="user",
            object_id=user_id,
            project_id=project.id,
            detail={"role": role.value},
        ),
        clock,
    )


def set_member(
    session: Session, actor: Actor, clock: Clock, slug: str, username: str, role: Role
) -> MemberRow:
    """Add a member or change a member's role (project admins only)."""
    access = project_for(session, actor, slug, Permission.MEMBERS_MANAGE)
    user = get_by_username(session, username)
    if not user.is_active:
        raise InvalidInput(f"User {user.username!r} is deactivated and cannot be added.")
    project = access.project
    current = member_role(session, project.id, user.id)
    if current is None:
        _add_member(session, actor, clock, project, user.id, role, access.audit_role)
    elif current != role:
        if current is Role.ADMIN and _admin_count(session, project.id) <= 1:
            raise Conflict(
                f"{user.username!r} is the last admin of {slug!r}; make someone else admin first."
            )
        member = session.get(ProjectMember, (project.id, user.id))
        assert member is not None
        member.role = role.value
        audit.record(
            session,
            audit.entry(
                actor,
                "project.member.role_change",
                role=access.audit_role,
                object_type="user",
                object_id=user.id,
                project_id=project.id,
                detail={"from": current.value, "to": role.value},
            ),
            clock,
        )
    member = session.get(ProjectMember, (project.id, user.id))
    assert member is not None
    return MemberRow(
        username=user.username, display_name=user.display_name, role=role, added_at=member.added_at
    )


def remove_member(session: Session, actor: Actor, clock: Clock, slug: str, username: str) -> None:
    access = project_for(session, actor, slug, Permission.MEMBERS_MANAGE)
    user = get_by_username(session, username)
    project = access.project
    member = session.get(ProjectMember, (project.id, user.id))
    if member is None:
        raise InvalidInput(f"{user.username!r} is not a member of {slug!r}.")
    if member.role == Role.ADMIN.value and _admin_count(session, project.id) <= 1:
        raise Conflict(
            f"{user.username!r} is the last admin of {slug!r}; make someone else admin first."
        )
    session.delete(member)
    audit.record(
        session,
        audit.entry(
            actor,
            "project.member.remove",
            role=access.audit_role,
            object_type="user",
            object_id=user.id,
            project_id=project.id,
            detail={"role": member.role},
        ),
        clock,
    )


def members_by_id(session: Session, user_ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()
    return dict(rows)
