"""One typed settings object, read from ``MEDLABEL_*`` environment variables.

Settings are built once by the CLI (or a test) and passed explicitly; nothing reads the
environment at import time.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDLABEL_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./medlabel-data"),
        description="Where the SQLite database, blobs and secrets live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. "
        "Default: SQLite in the data directory.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signing key for CSRF tokens. Default: generated once into "
        "<data_dir>/secrets/secret.key. Set it when several servers share a DB.",
    )
    deid_secret: SecretStr | None = Field(
        default=None,
        description="Key for de-identification (UID remapping, pseudonyms, date shifts). "
        "Default: generated once into <data_dir>/secrets/deid.key. Losing it means "
        "re-ingested files get new UIDs and pseudonyms.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0 to run background jobs on Redis (several servers "
        "and `medlabel worker` processes). Default: a SQLite queue in the data directory "
        "consumed inside `medlabel serve`.",
    )
    embedded_worker: bool = Field(
        default=True,
        description="Run background jobs inside `medlabel serve`. Turn off when separate "
        "`medlabel worker` processes consume a Redis queue.",
    )
    max_archive_bytes: int = Field(default=20 * 1024**3, description="Largest zip upload.")
    max_archive_entries: int = 100_000
    max_archive_ratio: int = 200
    ingest_workers: int = Field(
        default=0, description="Decoder processes (0: one per core, at most 4)."
    )
    ingest_memory_bytes: int = 4 * 1024**3
    ingest_max_active_jobs_per_user: int = Field(
        default=4,
        ge=0,
        description="Ingest jobs one user may have queued or running at once through the "
        "API (429 beyond). Site admins and the CLI are exempt; 0: unlimited.",
    )
    ingest_max_jobs_per_user_per_hour: int = Field(
        default=60,
        ge=0,
        description="Ingest uploads one user may start per rolling hour (429 beyond). "
        "Site admins and the CLI are exempt; 0: unlimited.",
    )
    ingest_max_bytes_per_user_per_day: int = Field(
        default=50 * 1024**3,
        ge=0,
        description="Bytes one user may upload for ingest per rolling 24 hours, counted as "
        "the unpacked sizes of their jobs' files (429 beyond; 413 for one upload larger "
        "than the whole budget). Site admins and the CLI are exempt; 0: unlimited.",
    )
    project_max_stored_bytes: int = Field(
        default=0,
        ge=0,
        description="Most bytes of image data one project may hold (stored source files, "
        "guideline images and files waiting to be ingested); an API upload that would "
        "exceed it is a 413, for site admins too. The CLI is exempt; 0: unlimited.",
    )
    cookie_secure: bool = Field(
        default=True,
        description="Send the session cookie only over HTTPS (browsers treat http://localhost "
        "as secure). Set false only for plain-HTTP test networks.",
    )
    auth_cache_seconds: float = Field(
        default=5.0,
        description="How long a server process may reuse a token/session check and an item "
        "access decision (pixel endpoints). Changes through another process take effect "
        "within this time; 0 disables the cache.",
    )
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    login_max_failures: int = 5
    login_ip_max_failures: int = 50
    login_window_minutes: int = 15
    max_json_bytes: int = 4 * 1024 * 1024
    max_upload_bytes: int = 20 * 1024 * 1024
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 2
    trust_proxy_headers: bool = False

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'medlabel.db'}"

    def ensure_data_dir(self) -> Path:
        root = self.resolved_data_dir()
        root.mkdir(parents=True, exist_ok=True)
        (root / "secrets").mkdir(mode=0o700, exist_ok=True)
        return root

    def resolved_secret_key(self) -> bytes:
        """The deployment's secret; generated into the data directory on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        return read_or_create_secret(self.ensure_data_dir() / "secrets" / "secret.key")

    def resolved_deid_secret(self) -> bytes:
        if self.deid_secret is not None:
            return self.deid_secret.get_secret_value().encode()
        return read_or_create_secret(self.ensure_data_dir() / "secrets" / "deid.key")


def read_or_create_secret(path: Path) -> bytes:
    """Read a 32-byte hex secret, creating it (mode 0600) atomically if absent."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}-{secrets.token_hex(4)}")  # threads too
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # fails if another process created it first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip().encode()


def quiet_third_party_logs() -> None:
    """pydicom logs invalid header values verbatim, which may be PHI: never let them out."""
    logging.getLogger("pydicom").disabled = True
