"""Per-project roles and what each may do.

Authorization is decided here and checked on every object by the services: a user who
is not a member of an object's project gets ``NotFound`` (the object's existence is not
revealed); a member whose role lacks the permission gets ``Forbidden``.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    EXPERT = "expert"
    VIEWER = "viewer"


class Permission(StrEnum):
    PROJECT_READ = "project.read"
    PROJECT_MANAGE = "project.manage"
    MEMBERS_MANAGE = "members.manage"
    SCHEMA_EDIT = "schema.edit"
    GUIDELINE_EDIT = "guideline.edit"
    ITEMS_READ = "items.read"
    ITEMS_INGEST = "items.ingest"
    ANNOTATE = "annotate"
    REVIEW = "review"
    ADJUDICATE = "adjudicate"
    EXPORT = "export"
    AUDIT_READ = "audit.read"
    QUARANTINE_RELEASE = "quarantine.release"


_VIEW = frozenset({Permission.PROJECT_READ, Permission.ITEMS_READ})
_ANNOTATE = _VIEW | {Permission.ANNOTATE}
_REVIEW = _ANNOTATE | {Permission.REVIEW}
_EXPERT = _REVIEW | {Permission.ADJUDICATE}

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEW,
    Role.ANNOTATOR: _ANNOTATE,
    Role.REVIEWER: _REVIEW,
    Role.EXPERT: _EXPERT,
    Role.ADMIN: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]
