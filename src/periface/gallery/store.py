"""The gallery's SQLite database: the source of truth for identities, consent records and (encrypted) templates."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    pseudonym TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consents (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    purpose TEXT NOT NULL,
    collected_by TEXT NOT NULL,
    collected_at TEXT NOT NULL,
    expires TEXT NOT NULL,
    reference TEXT
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('plain', 'masked')),
    source_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL,
    created_at TEXT NOT NULL,
    embedder TEXT  -- fingerprint of the embedder that computed it (NULL: enrolled before it was recorded)
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS templates_identity ON templates(identity_id);
CREATE INDEX IF NOT EXISTS consents_identity ON consents(identity_id);
CREATE INDEX IF NOT EXISTS images_identity ON images(identity_id);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted rows are overwritten with zeros, so an erased template does not linger in free pages.
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA journal_mode = DELETE")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: an error anywhere inside leaves the database as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a gallery made by an earlier release up to this schema: columns are only ever added, never changed."""
    columns = {r["name"] for r in conn.execute("PRAGMA table_info(templates)")}
    if "embedder" not in columns:
        try:
            conn.execute("ALTER TABLE templates ADD COLUMN embedder TEXT")
        except sqlite3.OperationalError as e:  # another process opening the same gallery added it first
            if "duplicate column" not in str(e):
                raise


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row["value"]


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))
