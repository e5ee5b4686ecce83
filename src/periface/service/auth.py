"""API keys and roles. Keys are random 32-byte tokens; only their SHA-256 is stored (``keys.sqlite``).

A key is shown once, when it is created. Roles:

- ``admin``: everything an operator can do, plus erasing identities and managing keys;
- ``operator``: enrol, search, verify, screen, detect, redact, read identities, confirm or reject candidates;
- ``auditor``: read and verify the audit log, nothing else.

>>> store = KeyStore(Path(gallery) / "keys.sqlite")                  # doctest: +SKIP
>>> key_id, token = store.create("operator", label="front desk")     # doctest: +SKIP
>>> store.authenticate(token).role                                   # doctest: +SKIP
'operator'
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Literal

from ..errors import PerifaceError

Role = Literal["admin", "operator", "auditor"]
ROLES: tuple[str, ...] = ("admin", "operator", "auditor")

_OPERATOR = frozenset({"detect", "verify", "enrol", "search", "screen", "redact", "identities:read", "decide"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": _OPERATOR,
    "admin": _OPERATOR | {"erase", "keys", "audit", "purge"},
    "auditor": frozenset({"audit"}),
}

_PREFIX = "pfk"


class AuthError(PerifaceError):
    """No key, an unknown key or a revoked key."""

    code = "unauthorized"
    exit_code = 11
    http_status = 401


class ForbiddenError(PerifaceError):
    """A valid key whose role does not allow the action."""

    code = "forbidden"
    exit_code = 12
    http_status = 403


@dataclass(frozen=True)
class KeyInfo:
    id: str
    role: str
    label: str
    created: str
    revoked: str | None = None
    last_used: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def allows(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyStore:
    """The API keys of one gallery's service, in ``DIR/keys.sqlite``: id, role, label, SHA-256 of the token."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._local = threading.local()
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")  # readers (every request) never wait for a key being created
        db.execute(
            "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, role TEXT NOT NULL,"
            " label TEXT NOT NULL DEFAULT '', created TEXT NOT NULL, revoked TEXT, last_used TEXT)"
        )
        db.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per thread, kept: every request authenticates, and opening a database costs."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        yield db

    @staticmethod
    def _row(row: tuple) -> KeyInfo:
        return KeyInfo(id=row[0], role=row[1], label=row[2], created=row[3], revoked=row[4], last_used=row[5])

    def create(self, role: str, label: str = "") -> tuple[str, str]:
        """A new key: returns ``(key_id, token)``. The token is not kept; show it once."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        key_id = "k_" + secrets.token_hex(4)
        token = f"{_PREFIX}_{secrets.token_urlsafe(32)}"
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO keys (id, hash, role, label, created) VALUES (?, ?, ?, ?, ?)",
                (key_id, hash_token(token), role, label, _now()),
            )
        return key_id, token

    def revoke(self, key_id: str) -> KeyInfo:
        with self._lock, self._connect() as db:
            cur = db.execute("UPDATE keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (_now(), key_id))
            if cur.rowcount == 0 and self.get(key_id) is None:
                raise AuthError(f"no key with id {key_id!r}")
        info = self.get(key_id)
        assert info is not None
        return info

    def get(self, key_id: str) -> KeyInfo | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT id, role, label, created, revoked, last_used FROM keys WHERE id = ?", (key_id,)
            ).fetchone()
        return self._row(row) if row else None

    def list(self) -> list[KeyInfo]:
        with self._connect() as db:
            rows = db.execute("SELECT id, role, label, created, revoked, last_used FROM keys ORDER BY created").fetchall()
        return [self._row(r) for r in rows]

    def authenticate(self, token: str | None) -> KeyInfo:
        """The active key for ``token``; raises ``AuthError`` otherwise.

        The lookup is by the SHA-256 of the token, so timing reveals nothing about stored tokens.
        """
        if not token:
            raise AuthError("an API key is required (Authorization: Bearer KEY, or X-API-Key)")
        with self._connect() as db:
            row = db.execute(
                "SELECT id, role, label, created, revoked, last_used FROM keys WHERE hash = ?", (hash_token(token),)
            ).fetchone()
        if row is None:
            raise AuthError("unknown API key")
        info = self._row(row)
        if not info.active:
            raise AuthError("this API key has been revoked")
        return info

    def touch(self, key_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE keys SET last_used = ? WHERE id = ?", (_now(), key_id))
