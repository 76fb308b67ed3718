"""Engines and transactions for SQLite (embedded default) and PostgreSQL (teams).

Use :meth:`Database.write` for any transaction that may write and :meth:`Database.read`
for read-only work. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that
two writers queue on the busy timeout instead of failing when a read lock would have to be
upgraded; readers use deferred transactions and run concurrently under WAL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8, max_overflow=16
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Owns the engines and session factories for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self._write_engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self._read_engine = _sqlite_engine(url, "BEGIN")
        else:
            self._write_engine = create_engine(
                url, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            self._read_engine = self._write_engine
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._write_engine

    @property
    def dialect(self) -> str:
        return self._write_engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception.

        On SQLite the threads of this process also queue on a lock before ``BEGIN
        IMMEDIATE``: SQLite's own busy handler makes waiting writers sleep and retry (up to
        100 ms at a time), so under load a writer can lose to newcomers again and again; the
        lock hands the writer slot over in turn. Other processes still queue in SQLite."""
        if self._write_lock is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._write_lock, self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    def ping(self) -> None:
        with self._read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self._write_engine.dispose()
        if self._read_engine is not self._write_engine:
            self._read_engine.dispose()
