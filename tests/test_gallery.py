import sqlite3

import numpy as np
import pytest

from periface import Consent, ConsentError, Gallery, GalleryError, ImageError, NoFaceError, UnknownIdentityError
from periface.errors import EncryptionKeyError
from periface.privacy.crypto import generate_key

from periface.demo import SAMPLES

PEOPLE = ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]


def consent(name: str, **kw) -> Consent:
    return Consent(subject=name, purpose="door access", **kw)


@pytest.fixture()
def gallery(tmp_path, engine, key_env):
    g = Gallery(tmp_path / "g", engine=engine)
    for p in PEOPLE:
        g.enroll(p, [SAMPLES / f"enrol_{p}.jpg"], consent=consent(p))
    return g


def snapshot(g: Gallery) -> bytes:
    return (g.path / "gallery.sqlite").read_bytes()


def test_search_ranks_the_right_person_first_one_entry_each(gallery):
    for person in ("obama", "kit_harington", "alex_lacamoire"):
        cands = gallery.search(SAMPLES / f"probe_{person}.jpg", k=10)
        assert cands[0].identity == person
        assert len({c.identity for c in cands}) == len(cands) == 5
        assert [c.rank for c in cands] == [1, 2, 3, 4, 5]
        assert cands[0].far < 1e-3 and cands[-1].far > cands[0].far
        assert all(a.score >= b.score for a, b in zip(cands, cands[1:]))


def test_one_search_on_several_pictures_of_a_person_averages_their_faces(gallery):
    from periface.image import load_image

    probe = load_image(SAMPLES / "probe_obama.jpg")
    blank = np.full((200, 200, 3), 128, np.uint8)
    single = gallery.search(probe, k=3)
    assert [(c.identity, c.score) for c in gallery.search([probe], k=3)] == [(c.identity, c.score) for c in single]
    both = gallery.search([probe, np.ascontiguousarray(probe[:, ::-1]), blank], k=3, purpose="track search")
    assert both[0].identity == "obama" and both[0].score != single[0].score  # the mirror image moved the mean
    record = gallery.audit.records(action="search")[-1]
    assert len(record.inputs) == 3 and record.details["pictures"] == 3 and record.details["pictures_used"] == 2
    vector, masked, used = gallery.probe_embedding([probe, blank])
    assert used == 1 and not masked and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    with pytest.raises(NoFaceError):
        gallery.search([blank, blank], k=3)


def test_reopened_gallery_persists_and_index_rebuilds_from_sqlite(gallery, engine):
    (gallery.path / "index.faiss.enc").unlink()
    again = Gallery(gallery.path, engine=engine)
    assert len(again) == 5
    assert again.search(SAMPLES / "probe_obama.jpg", k=1)[0].identity == "obama"


def test_templates_from_another_embedder_version_are_flagged_once(gallery, engine):
    import warnings

    from periface.gallery import TemplateVersionWarning

    assert gallery.template_fingerprint == engine.embedder.fingerprint and gallery.outdated_templates() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", TemplateVersionWarning)
        Gallery(gallery.path, engine=engine).search(SAMPLES / "probe_obama.jpg", k=1)  # same version: silent
    n_obama = gallery.identity("obama").templates + gallery.identity("obama").masked_templates
    with sqlite3.connect(gallery.path / "gallery.sqlite") as db:  # as if obama had been enrolled by an older head
        db.execute("UPDATE templates SET embedder = 'sface-robust:older-head' "
                   "WHERE identity_id = (SELECT id FROM identities WHERE name = 'obama')")
    old = Gallery(gallery.path, engine=engine)
    with pytest.warns(TemplateVersionWarning, match=r"1 of \d+ identities \(obama\)") as caught:
        assert old.search(SAMPLES / "probe_obama.jpg", k=1)[0].identity == "obama"
        old.search(SAMPLES / "probe_kit_harington.jpg", k=1)
    assert len([w for w in caught if w.category is TemplateVersionWarning]) == 1
    assert old.outdated_templates() == {"obama": n_obama}


def test_a_gallery_from_before_per_template_versions_opens_and_keeps_its_templates(gallery, engine):
    before = {i.identity: (i.templates, i.masked_templates) for i in gallery.identities()}
    with sqlite3.connect(gallery.path / "gallery.sqlite") as db:  # the templates table as earlier releases made it
        db.executescript("""
            CREATE TABLE old AS SELECT id, identity_id, kind, source_sha256, vector, created_at FROM templates;
            DROP TABLE templates; ALTER TABLE old RENAME TO templates;
            INSERT OR REPLACE INTO meta(key, value) VALUES ('embedder_fingerprint', 'sface-robust:older-head');""")
    with pytest.warns(UserWarning, match="identities"):
        reopened = Gallery(gallery.path, engine=engine)
        assert reopened.search(SAMPLES / "probe_obama.jpg", k=1)[0].identity == "obama"
    assert {i.identity: (i.templates, i.masked_templates) for i in reopened.identities()} == before
    # unrecorded templates count by the gallery's first recorded version
    assert set(reopened.outdated_templates()) == set(before)
    reopened.enroll("kit_harington", [SAMPLES / "enrol_kit_harington.jpg"],
                    consent=Consent(subject="kit_harington", purpose="door access"))
    assert reopened.outdated_templates()["kit_harington"] == sum(before["kit_harington"])  # new ones are current


def test_templates_are_encrypted_at_rest(gallery, engine):
    vec = engine.embed(SAMPLES / "enrol_obama.jpg").astype(np.float32).tobytes()
    db = snapshot(gallery)
    assert vec[:32] not in db
    assert vec[:32] not in (gallery.path / "index.faiss.enc").read_bytes()
    assert not list(gallery.path.glob("*.key"))


def test_wrong_key_refused(gallery, engine):
    with pytest.raises(EncryptionKeyError):
        Gallery(gallery.path, engine=engine, key=generate_key())


def test_remove_erases_every_trace(gallery):
    info = gallery.identity("obama")
    n = gallery.remove("obama")
    assert n == info.templates + info.masked_templates and "obama" not in gallery
    with sqlite3.connect(gallery.path / "gallery.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM templates").fetchone()[0] == sum(
            i.templates + i.masked_templates for i in gallery.identities())
    raw = snapshot(gallery)
    assert b"obama" not in raw
    cands = gallery.search(SAMPLES / "probe_obama.jpg", k=10)
    assert "obama" not in [c.identity for c in cands]
    with pytest.raises(UnknownIdentityError):
        gallery.remove("obama")
    assert gallery.audit.verify().ok
    assert gallery.audit.records(action="erase")[-1].purpose == "erasure request"  # an erasure always says why


def test_bad_image_leaves_gallery_unchanged(gallery, tmp_path):
    before = snapshot(gallery)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageError, match="bad.jpg"):
        gallery.enroll("newcomer", [SAMPLES / "verify_obama_b.jpg", bad], consent=consent("newcomer"))
    grey = tmp_path / "grey.png"
    from PIL import Image

    Image.new("RGB", (200, 200), (90, 90, 90)).save(grey)
    with pytest.raises(NoFaceError, match="grey.png"):
        gallery.enroll("newcomer", [grey], consent=consent("newcomer"))
    assert "newcomer" not in gallery and snapshot(gallery) == before


def test_consent_required_and_checked(gallery):
    with pytest.raises(ConsentError):
        gallery.enroll("x", [SAMPLES / "verify_obama_b.jpg"], consent=None)
    expired = Consent(subject="x", purpose="door access", collected_at="2020-01-01", expires="2021-01-01")
    with pytest.raises(ConsentError, match="expired"):
        gallery.enroll("x", [SAMPLES / "verify_obama_b.jpg"], consent=expired)
    with pytest.raises(ValueError):
        Consent(subject="x", purpose="  ")


def test_not_a_gallery(tmp_path, key_env):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hello")
    with pytest.raises(GalleryError, match="not empty"):
        Gallery(tmp_path / "stuff")
    (tmp_path / "file").write_text("x")
    with pytest.raises(GalleryError, match="not a directory"):
        Gallery(tmp_path / "file")


def test_unknown_identity(gallery):
    with pytest.raises(UnknownIdentityError):
        gallery.identity("nobody")


def test_purge_expired_identities(gallery):
    from datetime import date, timedelta

    due = gallery.purge_expired(now=date.today() + timedelta(days=4 * 365))
    assert sorted(due) == sorted(PEOPLE) and len(gallery) == 0
    assert any(r.action == "purge" for r in gallery.audit.records())


def test_rotate_key_reencrypts(gallery, engine):
    new = generate_key()
    rows = gallery.rotate_key(new)
    assert rows == sum(i.templates + i.masked_templates for i in gallery.identities())
    reopened = Gallery(gallery.path, engine=engine, key=new)
    assert reopened.search(SAMPLES / "probe_obama.jpg", k=1)[0].identity == "obama"
    assert reopened.audit.verify().ok


def test_audit_names_nobody(gallery):
    gallery.search(SAMPLES / "probe_obama.jpg", k=3, purpose="door check")
    text = (gallery.path / "audit.log").read_text()
    for p in PEOPLE:
        assert p not in text
    recs = gallery.audit.records(action="search")
    assert recs[-1].purpose == "door check" and len(recs[-1].subjects) == 3


def test_keep_images_stores_encrypted_thumbnails(tmp_path, engine, key_env):
    g = Gallery(tmp_path / "kept", engine=engine, keep_images=True)
    g.enroll("obama", [SAMPLES / "enrol_obama.jpg"], consent=consent("obama"))
    thumbs = g.image("obama")
    assert len(thumbs) == 1 and thumbs[0][:2] == b"\xff\xd8"
    assert thumbs[0][:64] not in snapshot(g)
    g.remove("obama")
    with sqlite3.connect(g.path / "gallery.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
