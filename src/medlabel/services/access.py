"""Object-level authorization: load a project for an actor and check a permission.

Every service that touches a project-scoped object goes through :func:`project_for`.
Non-members get ``NotFound`` exactly as for a project that does not exist (nothing about
other projects leaks); members without the permission get ``Forbidden``. Site admins act
as project admins everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.domain.errors import Forbidden, NotFound
from medlabel.domain.roles import Permission, Role, allows
from medlabel.services.actor import Actor
from medlabel.storage.models import Project, ProjectMember


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: Role
    via_site_admin: bool

    @property
    def audit_role(self) -> str:
        return "site-admin" if self.via_site_admin else self.role.value


class ProjectNotFound(NotFound):
    """A project the actor may not see (or that does not exist); audited as access denied."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"There is no project {slug[:64]!r} that you are a member of. Check the slug, "
            "or ask the project's admin to add you.",
            extra={"audit_denied": {"object_type": "project", "object_id": slug[:64]}},
        )


def member_role(session: Session, project_id: int, user_id: int | None) -> Role | None:
    if user_id is None:
        return None
    role = session.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
        )
    )
    return Role(role) if role else None


def project_for(
    session: Session, actor: Actor, slug: str, permission: Permission = Permission.PROJECT_READ
) -> ProjectAccess:
    project = session.scalar(select(Project).where(Project.slug == slug))
    if project is None:
        raise ProjectNotFound(slug)
    return decide(project, member_role(session, project.id, actor.user_id), actor, permission)


def decide(
    project: Project, role: Role | None, actor: Actor, permission: Permission
) -> ProjectAccess:
    """The access of ``actor`` (a member with ``role``, or none) to ``project``, for callers
    that loaded both in one query: what :func:`project_for` decides."""
    slug = project.slug
    if actor.is_admin and role is not Role.ADMIN:
        # Site admins act as project admins everywhere, whatever role a membership says.
        return ProjectAccess(project=project, role=Role.ADMIN, via_site_admin=True)
    if role is None:
        raise ProjectNotFound(slug)
    if not allows(role, permission):
        raise Forbidden(
            f"Your role in project {slug!r} is {role.value}, which does not allow "
            f"{permission.value}. Ask a project admin for a different role.",
            extra={
                "audit_denied": {
                    "object_type": "project",
                    "object_id": slug,
                    "project_id": project.id,
                    "permission": permission.value,
                }
            },
        )
    return ProjectAccess(project=project, role=role, via_site_admin=False)
