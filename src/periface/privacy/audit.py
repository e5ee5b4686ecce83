"""A tamper-evident, append-only audit log that names people only by pseudonym.

Every enrol, search, verify, screen and erase appends one JSON line. Each line carries the MAC of the line
before it and its own HMAC-SHA256 under a key the gallery derives from its template key, so whoever edits,
deletes or reorders a line without the key cannot make the chain verify again. Deleting the *last* lines
leaves a valid prefix, so a small keyed anchor file beside the log (``audit.log.head``) records how many lines
there should be and the MAC of the last one; ``verify`` cross-checks the two.

Subjects are the gallery's random per-identity pseudonyms, never names: when an identity is erased, the
gallery deletes the pseudonym-to-name mapping and the log keeps no name, yet every MAC still checks.

>>> log = AuditLog(Path(tmp) / "audit.log", key=b"k" * 32)            # doctest: +SKIP
>>> log.append("search", actor="op-1", role="operator", purpose="door access",
...            inputs=["9f86d0..."], subjects=["p-3b1c..."], scores=[0.71])  # doctest: +SKIP
>>> log.verify().ok                                                     # doctest: +SKIP
True
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, Field

GENESIS = "0" * 64
_ANCHOR_SUFFIX = ".head"
_LOCK_SUFFIX = ".lock"


ERASURE_PURPOSE = "erasure request"  # what an erasure states when its caller gives no more detail


def stated_purpose(purpose: str | None, how: str, source: str | None = None) -> str:
    """The purpose an audited request states (at least 3 characters), or ``PurposeRequiredError`` saying ``how`` to
    state it. The service and the command line apply the same rule."""
    from ..errors import PurposeRequiredError

    if not purpose or len(purpose.strip()) < 3:
        raise PurposeRequiredError(f"every request states its purpose: {how}", source=source)
    return purpose.strip()


def terminal_actor(tool: str = "cli") -> str:
    """Who is at this terminal, for the log: ``cli:<login name>`` (``cli:unknown`` where the system has none)."""
    import getpass

    try:
        return f"{tool}:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name and no passwd entry, e.g. an anonymous container user
        return f"{tool}:unknown"


#: Actions the library writes. Others are accepted (the log is not the place to refuse a record).
ACTIONS = frozenset(
    {"enrol", "search", "verify", "screen", "erase", "purge", "rotate-key", "confirm", "reject", "key-create",
     "key-revoke", "redact", "detect", "mask", "login"}
)


class AuditRecord(BaseModel):
    """One line of the log. ``subjects`` are pseudonyms; ``inputs`` are SHA-256 hex digests of the inputs."""

    seq: int
    time: str = Field(description="UTC, ISO 8601")
    action: str
    actor: str
    role: str
    purpose: str | None = None
    inputs: list[str] = []
    subjects: list[str] = []
    scores: list[float] = []
    details: dict[str, Any] = {}
    prev: str = Field(description="MAC of the previous record (64 zeros for the first)")
    mac: str = Field(description="HMAC-SHA256 of this record's other fields")


class AuditReport(BaseModel):
    """The outcome of ``AuditLog.verify``. ``problems`` say which record and why."""

    ok: bool
    records: int
    problems: list[str] = []


def sha256_hex(data: bytes) -> str:
    """The digest the log records for an input (an uploaded image, a file)."""
    return hashlib.sha256(data).hexdigest()


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _parse_time(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


class AuditLog:
    """The hash-chained log of one gallery: ``path`` (JSON lines) plus ``path.head`` (the keyed anchor).

    Appends are serialised with ``flock`` on ``path.lock``, so several processes (the CLI and a running
    service) and several threads can append to the same log.
    """

    def __init__(self, path: Path, key: bytes, *, fsync: bool = True) -> None:
        if len(key) < 16:
            raise ValueError("the audit key must be at least 16 bytes")
        self.path = Path(path)
        self.anchor_path = self.path.with_name(self.path.name + _ANCHOR_SUFFIX)
        self._lock_path = self.path.with_name(self.path.name + _LOCK_SUFFIX)
        # A separate sub-key per use: a MAC computed for records can never be replayed as an anchor MAC.
        self._record_key = hmac.new(key, b"periface audit record v1", hashlib.sha256).digest()
        self._anchor_key = hmac.new(key, b"periface audit anchor v1", hashlib.sha256).digest()
        self._fsync = fsync
        self._thread_lock = threading.Lock()

    # --- writing ---------------------------------------------------------------------------------------------

    def append(
        self,
        action: str,
        *,
        actor: str,
        role: str,
        purpose: str | None,
        inputs: list[str],
        subjects: list[str],
        scores: list[float],
        details: dict | None = None,
    ) -> AuditRecord:
        """Append one record and move the anchor forward; returns the record as written."""
        with self._locked():
            seq, prev = self._tail()
            body: dict[str, Any] = {
                "seq": seq,
                "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "action": str(action),
                "actor": str(actor),
                "role": str(role),
                "purpose": purpose,
                "inputs": [str(i) for i in inputs],
                "subjects": [str(s) for s in subjects],
                "scores": [round(float(s), 6) for s in scores],
                "details": dict(details or {}),
                "prev": prev,
            }
            body["mac"] = self._mac(body)
            line = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
            with open(self.path, "a", encoding="ascii") as f:
                f.write(line)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            self._write_anchor(seq + 1, body["mac"])
            return AuditRecord(**body)

    def _mac(self, body: dict[str, Any]) -> str:
        fields = {k: v for k, v in body.items() if k != "mac"}
        return hmac.new(self._record_key, _canonical(fields), hashlib.sha256).hexdigest()

    def _anchor_mac(self, count: int, last: str) -> str:
        return hmac.new(self._anchor_key, f"{count}:{last}".encode("ascii"), hashlib.sha256).hexdigest()

    def _write_anchor(self, count: int, last: str) -> None:
        data = json.dumps({"count": count, "last": last, "mac": self._anchor_mac(count, last)})
        tmp = self.anchor_path.with_name(self.anchor_path.name + ".tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(data + "\n")
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self.anchor_path)

    def _read_anchor(self) -> tuple[int, str] | None:
        """``(count, last_mac)`` when the anchor exists and its MAC checks, else ``None``."""
        try:
            data = json.loads(self.anchor_path.read_text(encoding="ascii"))
            count, last, mac = int(data["count"]), str(data["last"]), str(data["mac"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._anchor_mac(count, last)):
            return None
        return count, last

    def _tail(self) -> tuple[int, str]:
        """The next sequence number and the previous MAC.

        Taken from the anchor, not from the file, so that appending after someone truncated the log continues
        the *true* chain and the gap stays visible to ``verify``.
        """
        anchor = self._read_anchor()
        if anchor is not None:
            return anchor
        last = None
        for last in self._lines():
            pass
        if last is None:
            return 0, GENESIS
        try:
            record = json.loads(last)
            return int(record["seq"]) + 1, str(record["mac"])
        except (ValueError, KeyError, TypeError):
            return 0, GENESIS

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self._lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # --- reading ---------------------------------------------------------------------------------------------

    def _lines(self) -> Iterator[str]:
        if not self.path.exists():
            return
        with open(self.path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.strip():
                    yield line.rstrip("\n")

    def verify(self) -> AuditReport:
        """Check every MAC, the chain of ``prev`` links, the sequence numbers and the anchor.

        Detects an edited record (its MAC fails), a deleted record (a gap in ``seq`` and a broken link),
        reordered records, records deleted from the end (fewer lines than the anchor counts) and a log
        checked with the wrong key (nothing verifies).
        """
        problems: list[str] = []
        expected_seq = 0
        prev_mac = GENESIS
        count = 0
        good_macs = 0
        last_mac = GENESIS
        with self._locked():
            lines = list(self._lines())
            anchor_raw = self.anchor_path.exists()
            anchor = self._read_anchor()
        for index, line in enumerate(lines):
            count += 1
            try:
                body = json.loads(line)
                seq, mac, prev = int(body["seq"]), str(body["mac"]), str(body["prev"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"record {index}: not a valid record (edited or corrupted)")
                expected_seq += 1
                prev_mac = ""  # the next link cannot be checked; the damage is already reported
                continue
            if hmac.compare_digest(mac, self._mac(body)):
                good_macs += 1
            else:
                problems.append(f"record {index} (seq {seq}): MAC does not match its content (edited)")
            if seq > expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                problems.append(f"record {index} (seq {seq}): record(s) {missing} deleted before it")
            elif seq < expected_seq:
                problems.append(f"record {index} (seq {seq}): out of order (reordered or duplicated)")
            elif prev_mac and not hmac.compare_digest(prev, prev_mac):
                problems.append(f"record {index} (seq {seq}): link to the previous record is broken (edited)")
            expected_seq = max(expected_seq, seq + 1)
            prev_mac = mac
            last_mac = mac
        if count and good_macs == 0:
            problems.insert(0, "no record verifies: wrong audit key, or the whole log was rewritten")
        if anchor is None:
            if anchor_raw:
                problems.append(f"anchor {self.anchor_path.name}: MAC does not match (edited, or wrong key)")
            elif count:
                problems.append(f"anchor {self.anchor_path.name} is missing: cannot rule out deleted final records")
        else:
            anchored_count, anchored_last = anchor
            if expected_seq < anchored_count:
                n = anchored_count - expected_seq
                problems.append(f"log ends at seq {expected_seq - 1} but the anchor counts {anchored_count} "
                                f"records: the last {n} record(s) were deleted (truncated)")
            elif expected_seq > anchored_count:
                problems.append(f"log has records past the anchor's count {anchored_count} (appended outside periface)")
            elif not hmac.compare_digest(anchored_last, last_mac):
                problems.append("the last record is not the one the anchor names (replaced)")
        return AuditReport(ok=not problems, records=count, problems=problems)

    def records(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in the order written, filtered; ``limit`` keeps the most recent ones.

        Lines that are not valid records are skipped here (``verify`` reports them).
        """
        since_t, until_t = _parse_time(since), _parse_time(until)
        out: list[AuditRecord] = []
        for line in self._lines():
            try:
                record = AuditRecord(**json.loads(line))
            except Exception:
                continue
            if action is not None and record.action != action:
                continue
            if actor is not None and record.actor != actor:
                continue
            if subject is not None and subject not in record.subjects:
                continue
            if since_t or until_t:
                t = _parse_time(record.time)
                if since_t and t < since_t:
                    continue
                if until_t and t > until_t:
                    continue
            out.append(record)
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def __len__(self) -> int:
        return sum(1 for _ in self._lines())
