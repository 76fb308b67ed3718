"""The ``medlabel`` command line."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from medlabel import __version__
from medlabel.cli_options import DEFAULT_DATA_DIR, DataDir
from medlabel.domain.errors import MedlabelError
from medlabel.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="medlabel: trustworthy ground truth for healthcare AI.",
)
user_app = typer.Typer(no_args_is_help=True, help="Manage user accounts.")
project_app = typer.Typer(no_args_is_help=True, help="Manage projects.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema migrations.")
audit_app = typer.Typer(no_args_is_help=True, help="Verify the audit trail.")
app.add_typer(user_app, name="user")
app.add_typer(project_app, name="project")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medlabel {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """medlabel: de-identified ingest, annotation, review and export of medical images."""


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


def _ready_db(settings: Settings):  # type: ignore[no-untyped-def]
    """Open the database and bring it to the current migration."""
    from medlabel.storage import migrate
    from medlabel.storage.db import Database

    settings.ensure_data_dir()
    db = Database(settings.resolved_database_url())
    migrate.upgrade(db.engine)
    return db


def _passwords(settings: Settings):  # type: ignore[no-untyped-def]
    from medlabel.services.passwords import Passwords

    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def _fail(exc: MedlabelError) -> None:
    typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _read_password(password_stdin: bool, confirm: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (each uses one core; SQLite or PostgreSQL).",
        ),
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (the audit trail records reads anyway).")
    ] = False,
) -> None:
    """Run the web server (migrates the database first)."""
    import uvicorn

    settings = _settings(data_dir)
    db = _ready_db(settings)
    if workers > 1 and settings.embedded_worker:
        # The workers do not re-queue interrupted jobs themselves (each one would).
        from medlabel.services.actor import utcnow
        from medlabel.web.app import resume_interrupted_jobs
        from medlabel.web.context import AppContext

        resumed = resume_interrupted_jobs(AppContext.build(settings, db, utcnow))
        if resumed:
            typer.echo(f"Re-queued {resumed} interrupted ingest job(s).")
    db.dispose()
    typer.echo(
        f"medlabel {__version__} serving {settings.resolved_data_dir()} on "
        f"http://{host}:{port}/ (database: {db.dialect})"
    )
    if workers > 1:
        import os

        os.environ["MEDLABEL_DATA_DIR"] = str(settings.resolved_data_dir())
        uvicorn.run(
            "medlabel.web.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            proxy_headers=False,
            server_header=False,
            access_log=access_log,
        )
    else:
        from medlabel.web.app import create_app

        uvicorn.run(
            create_app(settings, embedded_worker=settings.embedded_worker),
            host=host,
            port=port,
            log_level="info",
            proxy_headers=False,
            server_header=False,
            access_log=access_log,
        )


@app.command()
def demo(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Interface for --serve.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for --serve.")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve", help="Start the server afterwards.")
    ] = False,
) -> None:
    """Create (or refresh) an admin and the demo project; print the URL and the login.

    Running it again sets a new password for the demo admin and prints it.
    """
    from medlabel.services import demo as demo_service
    from medlabel.services import users
    from medlabel.services.actor import Actor, utcnow

    settings = _settings(data_dir)
    db = _ready_db(settings)
    passwords = _passwords(settings)
    password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
    actor = Actor.cli()
    try:
        with db.write() as s:
            from sqlalchemy import select

            from medlabel.storage.models import User

            if s.scalar(select(User.id).where(User.username == "admin")) is None:
                users.create_user(
                    s,
                    actor,
                    passwords,
                    utcnow,
                    username="admin",
                    password=password,
                    display_name="Demo admin",
                    is_admin=True,
                )
            else:
                users.set_password(s, actor, passwords, utcnow, username="admin", password=password)
            demo_service.ensure_demo_project(s, actor, utcnow, owner="admin")
    except MedlabelError as exc:
        _fail(exc)
    db.dispose()
    typer.echo(f"Demo project ready in {settings.resolved_data_dir()}")
    typer.echo(f"  URL:      http://{host}:{port}/")
    typer.echo("  username: admin")
    typer.echo(f"  password: {password}")
    if serve_after:
        serve(data_dir=data_dir, host=host, port=port, workers=1, access_log=False)


@user_app.command("add")
def user_add(
    username: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make a site administrator.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a user account."""
    from medlabel.services import users
    from medlabel.services.actor import Actor, utcnow

    settings = _settings(data_dir)
    db = _ready_db(settings)
    password = _read_password(password_stdin)
    try:
        with db.write() as s:
            users.create_user(
                s,
                Actor.cli(),
                _passwords(settings),
                utcnow,
                username=username,
                password=password,
                display_name=display_name,
                is_admin=admin,
            )
    except MedlabelError as exc:
        _fail(exc)
    typer.echo(f"Created user {username.lower()}{' (site admin)' if admin else ''}.")


@user_app.command("set-password")
def user_set_password(
    username: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a user's password; ends the user's browser sessions."""
    from medlabel.services import users
    from medlabel.services.actor import Actor, utcnow

    settings = _settings(data_dir)
    db = _ready_db(settings)
    password = _read_password(password_stdin)
    try:
        with db.write() as s:
            users.set_password(
                s, Actor.cli(), _passwords(settings), utcnow, username=username, password=password
            )
    except MedlabelError as exc:
        _fail(exc)
    typer.echo(f"Password of {username.lower()} changed; their sessions were ended.")


@project_app.command("create")
def project_create(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    owner: Annotated[str | None, typer.Option(help="Username of the first project admin.")] = None,
    description: Annotated[str, typer.Option(help="What the project is about.")] = "",
) -> None:
    """Create a project."""
    from medlabel.services import projects
    from medlabel.services.actor import Actor, utcnow

    db = _ready_db(_settings(data_dir))
    try:
        with db.write() as s:
            projects.create_project(
                s, Actor.cli(), utcnow, slug=slug, name=name, description=description, owner=owner
            )
    except MedlabelError as exc:
        _fail(exc)
    typer.echo(f"Created project {slug}{f' with admin {owner}' if owner else ''}.")


@project_app.command("add-member")
def project_add_member(
    slug: str,
    username: str,
    role: Annotated[str, typer.Option(help="admin, annotator, reviewer, expert or viewer.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Add a user to a project, or change their role."""
    from medlabel.domain.roles import Role
    from medlabel.services import projects
    from medlabel.services.actor import Actor, utcnow

    try:
        parsed = Role(role)
    except ValueError:
        typer.secho(
            f"error: unknown role {role!r}; use one of {[r.value for r in Role]}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2) from None
    db = _ready_db(_settings(data_dir))
    try:
        with db.write() as s:
            projects.set_member(s, Actor.cli(), utcnow, slug, username, parsed)
    except MedlabelError as exc:
        _fail(exc)
    typer.echo(f"{username} is now {parsed.value} in {slug}.")


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply all pending migrations."""
    from medlabel.storage import migrate

    db = _ready_db(_settings(data_dir))
    typer.echo(f"Database ({db.dialect}) is at migration {migrate.current_revision(db.engine)}.")


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    anchor: Annotated[
        list[Path] | None,
        typer.Option(help="JSON file(s) written by 'medlabel audit head' to check against."),
    ] = None,
) -> None:
    """Walk the hash chain; exit 1 and name the first broken record if it was tampered with."""
    from medlabel.services import audit
    from medlabel.services.actor import Actor, utcnow

    db = _ready_db(_settings(data_dir))
    anchors = {}
    for path in anchor or []:
        data = json.loads(path.read_text())
        anchors[int(data["seq"])] = str(data["row_hash"])
    with db.read() as s:
        report = audit.verify(s, anchors)
    with db.write() as s:
        audit.record(
            s,
            audit.entry(
                Actor.cli(), "audit.verify", detail={"ok": report.ok, "checked": report.checked}
            ),
            utcnow,
        )
    if report.ok:
        typer.echo(
            f"audit trail OK: {report.checked} records, head {report.head_seq} {report.head_hash}"
        )
        return
    typer.secho(
        f"audit trail BROKEN at record {report.first_broken_seq}: {report.problem} "
        f"({report.checked} records before it verified)",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(code=1)


@audit_app.command("head")
def audit_head(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Print the chain head as JSON: keep it outside the database as an anchor."""
    from medlabel.services import audit
    from medlabel.services.actor import utcnow

    db = _ready_db(_settings(data_dir))
    with db.read() as s:
        seq, row_hash = audit.head(s)
    typer.echo(
        json.dumps({"seq": seq, "row_hash": row_hash, "read_at": utcnow().isoformat() + "Z"})
    )


def _register_imaging() -> None:
    from medlabel import cli_imaging

    cli_imaging.register(app, _ready_db, _settings)


_register_imaging()


def main() -> None:
    from medlabel.settings import quiet_third_party_logs

    quiet_third_party_logs()
    app()
