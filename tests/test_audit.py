"""The audit log is tamper-evident: every kind of edit a person without the key can make is detected."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from periface.privacy.audit import AuditLog, sha256_hex

KEY = b"\x01" * 32


def _fill(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path, KEY, fsync=False)
    for i in range(n):
        log.append(
            "search" if i % 2 else "enrol",
            actor=f"op-{i % 2}",
            role="operator",
            purpose="door access",
            inputs=[sha256_hex(f"img{i}".encode())],
            subjects=[f"p-{i:04x}"],
            scores=[0.5 + i / 100],
            details={"k": 3} if i % 2 else None,
        )
    return log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_clean_log_verifies(tmp_path: Path) -> None:
    log = _fill(tmp_path / "audit.log")
    report = log.verify()
    assert report.ok, report.problems
    assert report.records == 5
    assert len(log) == 5


def test_empty_log_verifies(tmp_path: Path) -> None:
    report = AuditLog(tmp_path / "audit.log", KEY).verify()
    assert report.ok and report.records == 0


def test_records_chain_and_hash_inputs(tmp_path: Path) -> None:
    log = _fill(tmp_path / "audit.log", 3)
    recs = log.records()
    assert [r.seq for r in recs] == [0, 1, 2]
    assert recs[0].prev == "0" * 64
    assert recs[1].prev == recs[0].mac and recs[2].prev == recs[1].mac
    assert recs[0].inputs == [sha256_hex(b"img0")]


def test_edited_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    lines = _lines(path)
    body = json.loads(lines[2])
    body["scores"] = [0.99]  # someone "improves" a score
    lines[2] = json.dumps(body, sort_keys=True, separators=(",", ":"))
    _write(path, lines)
    report = log.verify()
    assert not report.ok
    assert any("record 2" in p and "edited" in p for p in report.problems), report.problems


def test_edit_with_recomputed_sha256_is_still_detected(tmp_path: Path) -> None:
    # A forger who recomputes a plain hash gains nothing: the MAC is keyed.
    import hashlib

    path = tmp_path / "audit.log"
    log = _fill(path)
    lines = _lines(path)
    body = json.loads(lines[1])
    body["actor"] = "someone-else"
    body["mac"] = hashlib.sha256(json.dumps(body).encode()).hexdigest()
    lines[1] = json.dumps(body)
    _write(path, lines)
    assert not log.verify().ok


def test_garbage_line_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    lines = _lines(path)
    lines[3] = lines[3][:40]
    _write(path, lines)
    report = log.verify()
    assert not report.ok
    assert any("record 3" in p for p in report.problems)


def test_deleted_middle_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    lines = _lines(path)
    del lines[2]
    _write(path, lines)
    report = log.verify()
    assert not report.ok
    assert any("deleted" in p and "2" in p for p in report.problems), report.problems


def test_deleted_last_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    _write(path, _lines(path)[:-1])
    report = log.verify()
    assert not report.ok
    assert any("truncated" in p for p in report.problems), report.problems


def test_deleted_all_records_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    path.write_text("")
    report = log.verify()
    assert not report.ok and report.records == 0


def test_reordered_records_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    lines = _lines(path)
    lines[1], lines[3] = lines[3], lines[1]
    _write(path, lines)
    report = log.verify()
    assert not report.ok
    assert any("out of order" in p for p in report.problems), report.problems


def test_wrong_key_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _fill(path)
    report = AuditLog(path, b"\x02" * 32).verify()
    assert not report.ok
    assert "wrong audit key" in report.problems[0]


def test_forged_anchor_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    _write(path, _lines(path)[:-2])
    anchor = json.loads(log.anchor_path.read_text())
    anchor["count"] = 3
    log.anchor_path.write_text(json.dumps(anchor))
    report = log.verify()
    assert not report.ok
    assert any("anchor" in p for p in report.problems)


def test_missing_anchor_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    log.anchor_path.unlink()
    report = log.verify()
    assert not report.ok
    assert any("missing" in p for p in report.problems)


def test_append_after_truncation_keeps_the_gap_visible(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = _fill(path)
    _write(path, _lines(path)[:-2])
    log.append("verify", actor="op", role="operator", purpose="x", inputs=[], subjects=[], scores=[])
    report = log.verify()
    assert not report.ok
    assert any("deleted" in p for p in report.problems), report.problems


def test_concurrent_appends_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    logs = [AuditLog(path, KEY, fsync=False) for _ in range(4)]  # separate objects, as separate processes would be

    def work(log: AuditLog) -> None:
        for _ in range(25):
            log.append("verify", actor="op", role="operator", purpose="t", inputs=[], subjects=[], scores=[0.1])

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = logs[0].verify()
    assert report.ok, report.problems[:3]
    assert report.records == 100


def test_filters(tmp_path: Path) -> None:
    log = _fill(tmp_path / "audit.log", 6)
    assert {r.action for r in log.records(action="search")} == {"search"}
    assert len(log.records(action="search")) == 3
    assert all(r.actor == "op-1" for r in log.records(actor="op-1"))
    assert [r.subjects for r in log.records(subject="p-0002")] == [["p-0002"]]
    assert [r.seq for r in log.records(limit=2)] == [4, 5]
    now = datetime.now(timezone.utc)
    assert len(log.records(since=now - timedelta(minutes=1))) == 6
    assert log.records(until=now - timedelta(minutes=1)) == []
    assert len(log.records(since=(now - timedelta(minutes=1)).isoformat())) == 6


def test_log_holds_no_names(tmp_path: Path) -> None:
    # The log only ever sees what the caller passes; the gallery passes pseudonyms. This guards the format:
    # no field of a record is derived from anything but its arguments.
    path = tmp_path / "audit.log"
    log = AuditLog(path, KEY, fsync=False)
    log.append("erase", actor="admin-1", role="admin", purpose="subject request", inputs=[],
               subjects=["p-7f3a"], scores=[])
    assert "p-7f3a" in path.read_text()
    assert log.verify().ok


def test_short_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "a.log", b"short")
