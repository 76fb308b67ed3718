"""The Alembic migrations and the ORM models describe the same schema, on both databases.

Every test starts from the fresh database the ``database`` fixture clones from a template
that ``migrate.upgrade`` brought to head.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError

from medlabel.domain.audit import AuditEntry
from medlabel.services import audit
from medlabel.storage import migrate
from medlabel.storage.db import Database
from medlabel.storage.models import Base, User

NOW = datetime(2026, 11, 26, 12, 0, 0)
APP_TABLES = set(Base.metadata.tables)  # every mapped table comes from a migration


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def audit_triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                    "AND tgrelid = 'audit_event'::regclass"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='audit_event'"
                )
            )
        return {r[0] for r in rows}


def add_user(database: Database, username: str) -> None:
    with database.write() as s:
        s.add(
            User(
                username=username,
                display_name=username,
                password_hash="x",
                is_admin=False,
                is_active=True,
                created_at=NOW,
                password_changed_at=NOW,
            )
        )


def test_the_models_match_the_migrations(database: Database) -> None:
    assert tables(database.engine) == APP_TABLES
    assert set(Base.metadata.tables) == APP_TABLES
    assert schema_diff(database.engine) == []


def test_the_comparison_would_notice_a_drift(database: Database) -> None:
    """The check above can fail: a column the migrations never created is reported."""
    with database.engine.begin() as conn:
        conn.execute(text("ALTER TABLE project ADD COLUMN stray_column INTEGER"))
    diff = schema_diff(database.engine)
    assert any(d[0] == "remove_column" and d[3].name == "stray_column" for d in diff), diff


def test_the_database_is_at_head(database: Database) -> None:
    head = migrate.head_revision()
    assert migrate.current_revision(database.engine) == head
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [(head,)]


def test_upgrading_again_is_a_no_op(database: Database) -> None:
    add_user(database, "kept-user")
    before_tables = {t: inspect(database.engine).get_columns(t) for t in APP_TABLES}
    before_triggers = audit_triggers(database.engine)
    migrate.upgrade(database.engine)
    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    after_tables = {t: inspect(database.engine).get_columns(t) for t in APP_TABLES}
    assert [str(c) for c in after_tables.items()] == [str(c) for c in before_tables.items()]
    assert audit_triggers(database.engine) == before_triggers
    with database.read() as s:
        assert s.scalars(select(User.username)).all() == ["kept-user"]
    assert schema_diff(database.engine) == []


def test_downgrade_to_base_and_upgrade_to_head(database: Database) -> None:
    assert audit_triggers(database.engine)
    downgrade(database.engine)
    assert tables(database.engine) == set()
    assert migrate.current_revision(database.engine) is None
    if database.dialect == "postgresql":
        with database.engine.connect() as conn:
            functions = conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'medlabel_audit_append_only'")
            ).scalar()
        assert functions == 0

    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    assert tables(database.engine) == APP_TABLES
    assert schema_diff(database.engine) == []
    # The upgraded database works, and its audit table is append-only again.
    add_user(database, "after-roundtrip")
    with database.write() as s:
        audit.record(s, AuditEntry(action="test.event"), lambda: NOW)
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET action = 'x'"))
    with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event"))
    with database.read() as s:
        assert audit.verify(s).ok and audit.head(s)[0] == 1


def test_the_migrations_install_the_append_only_triggers(database: Database) -> None:
    expected = (
        {"audit_event_no_update_delete", "audit_event_no_truncate"}
        if database.dialect == "postgresql"
        else {"audit_event_no_update", "audit_event_no_delete"}
    )
    assert audit_triggers(database.engine) == expected
