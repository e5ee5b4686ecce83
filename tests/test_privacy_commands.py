"""The privacy and service commands, mounted on a throwaway Typer app as periface.cli mounts them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from periface.privacy.commands import AUDIT_BROKEN_EXIT, audit_app, gallery_app, purge, redact
from periface.service.commands import keys_app

FIXTURES = Path(__file__).parent / "fixtures"

cli = typer.Typer()
cli.add_typer(audit_app, name="audit")
cli.add_typer(gallery_app, name="gallery")
cli.add_typer(keys_app, name="keys")
cli.command()(purge)
cli.command()(redact)
runner = CliRunner()


@pytest.fixture()
def gallery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PERIFACE_KEY", raising=False)
    monkeypatch.delenv("PERIFACE_KEY_FILE", raising=False)
    from periface import Consent
    from periface.gallery import Gallery

    path = tmp_path / "g"
    g = Gallery(path)
    g.enroll("Alice Example", [FIXTURES / "obama.jpg"], consent=Consent(subject="Alice Example", purpose="door access"))
    g.enroll("Bob Example", [FIXTURES / "biden.jpg"], consent=Consent(subject="Bob Example", purpose="door access"))
    g.close()
    return path


def test_keys_create_list_revoke(gallery: Path) -> None:
    r = runner.invoke(cli, ["keys", "create", "--role", "operator", "--gallery", str(gallery), "--json"])
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["key"].startswith("pfk_")
    listed = runner.invoke(cli, ["keys", "list", "--gallery", str(gallery), "--json"])
    assert created["key"] not in listed.stdout and created["id"] in listed.stdout
    r = runner.invoke(cli, ["keys", "revoke", created["id"], "--gallery", str(gallery)])
    assert r.exit_code == 0 and "revoked" in r.stdout
    assert runner.invoke(cli, ["keys", "create", "--role", "boss", "--gallery", str(gallery)]).exit_code == 2
    shown = runner.invoke(cli, ["audit", "show", "--gallery", str(gallery), "--json"])
    actions = [rec["action"] for rec in json.loads(shown.stdout)]
    assert actions[-2:] == ["key-create", "key-revoke"]


def test_audit_verify_detects_tampering(gallery: Path) -> None:
    r = runner.invoke(cli, ["audit", "verify", "--gallery", str(gallery)])
    assert r.exit_code == 0 and "ok" in r.stdout
    log = gallery / "audit.log"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n")  # delete the last record
    r = runner.invoke(cli, ["audit", "verify", "--gallery", str(gallery), "--json"])
    assert r.exit_code == AUDIT_BROKEN_EXIT
    assert json.loads(r.stdout)["ok"] is False


def test_audit_show_filters(gallery: Path) -> None:
    r = runner.invoke(cli, ["audit", "show", "--gallery", str(gallery), "--action", "enrol", "--json"])
    records = json.loads(r.stdout)
    assert len(records) == 2 and all(rec["action"] == "enrol" for rec in records)
    assert "Alice" not in r.stdout  # pseudonyms only
    r = runner.invoke(cli, ["audit", "show", "--gallery", str(gallery), "--limit", "1"])
    assert r.exit_code == 0 and "enrol" in r.stdout


def test_purge_erases_only_the_expired(gallery: Path) -> None:
    db = sqlite3.connect(gallery / "gallery.sqlite")
    db.execute("UPDATE identities SET last_used_at = '2020-01-01T00:00:00+00:00' WHERE name = 'Alice Example'")
    db.commit()
    db.close()
    r = runner.invoke(cli, ["purge", "--gallery", str(gallery), "--dry-run", "--json"])
    assert json.loads(r.stdout)["due"] == ["Alice Example"]
    r = runner.invoke(cli, ["purge", "--gallery", str(gallery), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["purged"] == ["Alice Example"]
    assert b"Alice Example" not in (gallery / "gallery.sqlite").read_bytes()
    assert runner.invoke(cli, ["purge", "--gallery", str(gallery), "--retention-days", "5000"]).exit_code == 2
    shown = json.loads(runner.invoke(cli, ["audit", "show", "--gallery", str(gallery), "--action", "purge",
                                           "--json"]).stdout)
    assert len(shown) == 1 and shown[0]["role"] == "system"


def test_rotate_key(gallery: Path, tmp_path: Path) -> None:
    from periface.errors import EncryptionKeyError
    from periface.gallery import Gallery
    from periface.privacy.crypto import decode_key, default_key_file

    key_file = default_key_file(gallery)
    old = decode_key(key_file.read_text())
    r = runner.invoke(cli, ["gallery", "rotate-key", "--gallery", str(gallery)])
    assert r.exit_code == 0, r.output
    new = decode_key(key_file.read_text())
    assert new != old and not key_file.with_name(key_file.name + ".new").exists()
    with pytest.raises(EncryptionKeyError):
        Gallery(gallery, key=old)
    g = Gallery(gallery)
    assert [i.identity for i in g.identities()] == ["Alice Example", "Bob Example"]
    assert g.search(FIXTURES / "obama2.jpg", k=1)[0].identity == "Alice Example"
    assert g.audit.verify().ok


def test_redact_command(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = runner.invoke(cli, ["redact", str(FIXTURES / "two_people.jpg"), str(FIXTURES / "obama.jpg"), "--out", str(out),
                            "--json"])
    assert r.exit_code == 0, r.output
    docs = json.loads(r.stdout)
    faces = [d["faces"] for d in docs]
    assert faces[0] >= 2 and faces[1] >= 1  # recall-tuned: every face, perhaps a stray box too
    assert (out / "two_people.jpg").exists()
    r = runner.invoke(cli, ["redact", str(FIXTURES / "obama.jpg"), "--out", str(FIXTURES)])
    assert r.exit_code == 2  # refuses to overwrite originals


def test_redact_a_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURES / "two_people.jpg", photos / "a.jpg")
    shutil.copy(FIXTURES / "obama_small.jpg", photos / "b.JPG")
    (photos / "notes.txt").write_text("not an image, not a photo: left alone")
    (photos / "cut.jpg").write_bytes((FIXTURES / "obama.jpg").read_bytes()[:2000])
    out = tmp_path / "out"
    r = runner.invoke(cli, ["redact", str(photos), "--out", str(out), "--json"])
    assert r.exit_code == 3  # one image could not be read; the others were redacted
    docs = {Path(d["file"]).name: d for d in json.loads(r.stdout)}
    assert set(docs) == {"a.jpg", "b.JPG", "cut.jpg"} and docs["cut.jpg"]["error"]["code"] == "bad_image"
    assert docs["a.jpg"]["faces"] >= 2 and sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.JPG"]

    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(cli, ["redact", str(empty), "--out", str(tmp_path / "out2")])
    assert r.exit_code == 3 and "no images" in r.output

    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(FIXTURES / "obama.jpg", other / "a.jpg")
    r = runner.invoke(cli, ["redact", str(photos), str(other), "--out", str(tmp_path / "out3")])
    assert r.exit_code == 2 and "share a name" in r.output and not (tmp_path / "out3").exists()


def test_gallery_outdated_lists_who_to_re_enrol(gallery: Path) -> None:
    r = runner.invoke(cli, ["gallery", "outdated", "--gallery", str(gallery), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["identities"] == {}
    with sqlite3.connect(gallery / "gallery.sqlite") as db:
        db.execute("UPDATE templates SET embedder = 'sface-robust:older-head' "
                   "WHERE identity_id = (SELECT id FROM identities WHERE name = 'Bob Example')")
    r = runner.invoke(cli, ["gallery", "outdated", "--gallery", str(gallery), "--json"])
    stale = json.loads(r.stdout)["identities"]
    assert list(stale) == ["Bob Example"] and stale["Bob Example"] >= 1
    r = runner.invoke(cli, ["gallery", "outdated", "--gallery", str(gallery)])
    assert r.exit_code == 0 and "1 of 2 identities to re-enrol" in r.stdout and "Bob Example" in r.stdout
