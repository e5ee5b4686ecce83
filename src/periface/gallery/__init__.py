"""A consented gallery: identities, their consent records and templates, and 1:N search over them.

One directory holds ``gallery.sqlite`` (the source of truth; templates AES-GCM encrypted), ``index.faiss.enc``
(an encrypted FAISS snapshot, rebuilt from SQLite when stale) and ``audit.log`` (hash-chained, keyed). The key
lives outside the directory (``periface.privacy.crypto``). Every enrol, search and erase is audited and names
people only by a random pseudonym that dies with the identity.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConsentError, EncryptionKeyError, GalleryError, ImageError, NoFaceError, UnknownIdentityError
from ..image import ImageInput, describe
from ..masked import fuse
from ..match import Candidate, mean_probe
from ..privacy.audit import ERASURE_PURPOSE, AuditLog
from ..privacy.consent import Consent
from ..privacy.crypto import TemplateCipher, load_or_create_key
from ..privacy.retention import RetentionPolicy
from . import store
from .index import TemplateIndex

DB_NAME = "gallery.sqlite"
INDEX_NAME = "index.faiss.enc"
AUDIT_NAME = "audit.log"
NO_PURPOSE = "not stated (library call)"


class TemplateVersionWarning(UserWarning):
    """The gallery's templates were computed by another version of its embedder than the engine's."""


@dataclass(frozen=True)
class EnrolResult:
    identity: str
    templates: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdentityInfo:
    identity: str
    templates: int
    masked_templates: int
    created_at: str
    last_used_at: str
    consent: Consent
    expires: date


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def input_digest(source: ImageInput) -> str:
    """SHA-256 of an input as given (file bytes, encoded bytes, or raw array bytes), for the audit log."""
    if isinstance(source, (str, Path)):
        try:
            return hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError:
            return "unreadable"
    if isinstance(source, (bytes, bytearray)):
        return hashlib.sha256(bytes(source)).hexdigest()
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    return "unknown"


class Gallery:
    """Enrol consented people and search among them.

    >>> g = Gallery("/tmp/demo-gallery")                                           # doctest: +SKIP
    >>> g.enroll("alice", ["alice1.jpg"], consent=Consent(subject="alice", purpose="door access"))  # doctest: +SKIP
    >>> g.search("probe.jpg", k=5)[0].identity                                      # doctest: +SKIP
    'alice'
    """

    def __init__(
        self,
        path: str | Path,
        *,
        engine=None,
        embedder: str | None = None,
        keep_images: bool = False,
        key: bytes | None = None,
        retention: RetentionPolicy | None = None,
        actor: str = "local",
        role: str = "operator",
    ) -> None:
        self.path = Path(path)
        self.actor, self.role = actor, role
        self.retention = retention or RetentionPolicy()
        if self.path.exists() and not self.path.is_dir():
            raise GalleryError("exists and is not a directory", source=str(self.path))
        db_path = self.path / DB_NAME
        if self.path.is_dir() and not db_path.exists() and any(self.path.iterdir()):
            raise GalleryError("directory is not empty and holds no periface gallery", source=str(self.path))
        creating = not db_path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._key = key or load_or_create_key(self.path, create=creating)
        self._cipher = TemplateCipher(self._key)
        self._db = store.connect(db_path)
        self._db.executescript(store.SCHEMA)
        if creating:
            from ..config import Settings

            embedder = embedder or (engine.embedder.name if engine is not None else Settings().embedder)
            self._initialise(embedder, keep_images)
        self._check_meta(embedder if creating else None)
        store.add_missing_columns(self._db)
        self._engine = engine
        self._version_checked = False
        self._index: TemplateIndex | None = None
        self._index_generation = -1
        audit_key = self._cipher.unseal(bytes.fromhex(store.get_meta(self._db, "audit_key") or ""), b"audit-key")
        self.audit = AuditLog(self.path / AUDIT_NAME, audit_key)

    # --- set-up ------------------------------------------------------------------------------------------------

    def _initialise(self, embedder: str, keep_images: bool) -> None:
        with store.transaction(self._db) as db:
            store.set_meta(db, "schema", store.SCHEMA_VERSION)
            store.set_meta(db, "embedder", embedder)
            store.set_meta(db, "keep_images", "1" if keep_images else "0")
            store.set_meta(db, "generation", "0")
            store.set_meta(db, "created_at", _now())
            store.set_meta(db, "key_check", self._cipher.seal(b"periface", b"key-check").hex())
            # The audit chain has its own key, sealed under the template key, so that it survives key rotation.
            store.set_meta(db, "audit_key", self._cipher.seal(secrets.token_bytes(32), b"audit-key").hex())

    def _check_meta(self, embedder: str | None) -> None:
        if store.get_meta(self._db, "schema") != store.SCHEMA_VERSION:
            raise GalleryError("not a periface gallery (schema missing or from another version)", source=str(self.path))
        check = store.get_meta(self._db, "key_check")
        try:
            self._cipher.unseal(bytes.fromhex(check or ""), b"key-check")
        except (EncryptionKeyError, ValueError):
            raise EncryptionKeyError("the template key does not open this gallery", source=str(self.path)) from None

    @property
    def embedder_name(self) -> str:
        return store.get_meta(self._db, "embedder") or "sface"

    @property
    def keep_images(self) -> bool:
        return store.get_meta(self._db, "keep_images") == "1"

    @property
    def engine(self):
        if self._engine is None:
            from ..engine import Engine

            self._engine = Engine(self.embedder_name)
        if self._engine.embedder.name != self.embedder_name:
            raise GalleryError(
                f"gallery was built with embedder {self.embedder_name!r}, engine uses {self._engine.embedder.name!r}",
                source=str(self.path),
            )
        self._warn_if_templates_differ()
        return self._engine

    @property
    def template_fingerprint(self) -> str | None:
        """The embedder fingerprint of the gallery's first templates (None: enrolled before it was recorded).
        Galleries of the fourteenth session kept it in ``meta``; since then each template records its own."""
        row = self._db.execute("SELECT embedder FROM templates ORDER BY id LIMIT 1").fetchone()
        return store.get_meta(self._db, "embedder_fingerprint") or (row["embedder"] if row else None)

    def outdated_templates(self) -> dict[str, int]:
        """Per identity, how many of its templates another version of the embedder computed than this gallery's
        engine runs: re-enrolling that person restores full accuracy. A template enrolled before versions were
        recorded per template counts by the gallery's first recorded version; one older still is not counted."""
        return self._templates_not_from(self.engine.embedder.fingerprint)

    def _templates_not_from(self, current: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT i.name, COUNT(*) FROM templates t JOIN identities i ON i.id = t.identity_id "
            "WHERE COALESCE(t.embedder, ?) != ? GROUP BY i.name ORDER BY i.name",
            (self.template_fingerprint or current, current),
        ).fetchall()
        return {name: int(n) for name, n in rows}

    def _warn_if_templates_differ(self) -> None:
        # A model or alignment update changes the vectors a little: old templates still match, at a slightly
        # lower accuracy than freshly enrolled ones. Say so once; re-enrolling the people restores it.
        if self._version_checked:
            return
        self._version_checked = True
        outdated = self._templates_not_from(self._engine.embedder.fingerprint)
        if outdated:
            names = ", ".join(list(outdated)[:5]) + (", ..." if len(outdated) > 5 else "")
            warnings.warn(f"{self.path}: {len(outdated)} of {len(self)} identities ({names}) hold templates computed "
                          f"by another version of the embedder than this engine's {self._engine.embedder.fingerprint}; "
                          "they still match, but re-enrolling them restores full accuracy "
                          "(`periface gallery outdated` lists them)", TemplateVersionWarning, stacklevel=3)

    def _generation(self) -> int:
        return int(store.get_meta(self._db, "generation") or 0)

    def _bump_generation(self, db) -> int:
        gen = self._generation() + 1
        store.set_meta(db, "generation", str(gen))
        return gen

    # --- index -------------------------------------------------------------------------------------------------

    def _template_index(self) -> TemplateIndex:
        generation = self._generation()
        if self._index is not None and self._index_generation == generation:
            return self._index
        dim = self.engine.embedder.dim
        index = TemplateIndex.load(self.path / INDEX_NAME, self._cipher, generation, dim)
        if index is None:
            index = self.rebuild_index(generation)
        self._index, self._index_generation = index, generation
        return index

    def rebuild_index(self, generation: int | None = None) -> TemplateIndex:
        """Rebuild the FAISS index from the SQLite rows (the source of truth) and save its encrypted snapshot."""
        generation = self._generation() if generation is None else generation
        index = TemplateIndex(self.engine.embedder.dim)
        rows = self._db.execute("SELECT id, identity_id, vector FROM templates ORDER BY id").fetchall()
        if rows:
            ids = np.array([r["id"] for r in rows], np.int64)
            vectors = np.stack([self._decrypt_template(r) for r in rows])
            index.add(ids, vectors)
        index.save(self.path / INDEX_NAME, self._cipher, generation)
        self._index, self._index_generation = index, generation
        return index

    def _decrypt_template(self, row) -> np.ndarray:
        return self._cipher.decrypt(row["vector"], f"template:{row['id']}:{row['identity_id']}".encode())

    # --- enrol -------------------------------------------------------------------------------------------------

    def enroll(
        self,
        identity: str,
        images: Sequence[ImageInput],
        *,
        consent: Consent | None,
        crop: bool = False,
        actor: str | None = None,
        role: str | None = None,
    ) -> EnrolResult:
        """Add ``identity`` (or more templates to it) from ``images``, under a valid consent record.

        Every image is checked before anything is written: one bad image (unreadable, no face) refuses the whole
        enrolment and leaves the gallery as it was.
        """
        if consent is None:
            raise ConsentError("enrolment needs a consent record (subject, purpose, expiry)", source=identity)
        if not isinstance(consent, Consent):
            consent = Consent.model_validate(consent)
        if not consent.is_valid():
            raise ConsentError(f"consent expired on {consent.expires.isoformat()}", source=identity)
        identity = identity.strip()
        if not identity:
            raise GalleryError("identity name must not be blank")
        if isinstance(images, (str, Path, bytes, np.ndarray)):
            images = [images]
        if not images:
            raise ImageError("no images given", source=identity)
        engine = self.engine
        vectors, masked_vectors, digests, notes, raw_images = [], [], [], [], []
        for img in images:
            rgb = engine.load(img)
            face = engine.face(rgb, crop=crop, name=describe(img))
            notes += [f"{describe(img)}: {n}" for n in face.notes]
            digest = input_digest(img)
            vectors.append(face.embeddings[0])
            digests.append(digest)
            # Masked variants of an unmasked enrolment photo: what a masked probe of this person is compared with.
            wears_mask = bool(face.mask) and face.mask[0] != "none"
            masked_vectors.append(engine.masked_references(rgb, face, seed=int(digest[:8], 16))
                                  if engine.has_masked_path and not wears_mask else np.zeros((0, engine.embedder.dim)))
            if self.keep_images:
                raw_images.append(_image_bytes(rgb))
        now = _now()
        with store.transaction(self._db) as db:
            row = db.execute("SELECT id, pseudonym FROM identities WHERE name = ?", (identity,)).fetchone()
            if row is None:
                pseudonym = "p-" + secrets.token_hex(8)
                cur = db.execute(
                    "INSERT INTO identities(name, pseudonym, created_at, last_used_at) VALUES (?, ?, ?, ?)",
                    (identity, pseudonym, now, now),
                )
                identity_id = cur.lastrowid
            else:
                identity_id, pseudonym = row["id"], row["pseudonym"]
                db.execute("UPDATE identities SET last_used_at = ? WHERE id = ?", (now, identity_id))
            db.execute(
                "INSERT INTO consents(identity_id, subject, purpose, collected_by, collected_at, expires, reference)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (identity_id, consent.subject, consent.purpose, consent.collected_by,
                 consent.collected_at.isoformat(), consent.expires.isoformat(), consent.reference),
            )
            new_ids, new_vectors = [], []
            for vec, variants, digest in zip(vectors, masked_vectors, digests):
                for kind, v in [("plain", vec)] + [("masked", m) for m in variants]:
                    cur = db.execute(
                        "INSERT INTO templates(identity_id, kind, source_sha256, vector, created_at, embedder)"
                        " VALUES (?, ?, ?, x'', ?, ?)",
                        (identity_id, kind, digest, now, engine.embedder.fingerprint),
                    )
                    tid = cur.lastrowid
                    blob = self._cipher.encrypt(v, f"template:{tid}:{identity_id}".encode())
                    db.execute("UPDATE templates SET vector = ? WHERE id = ?", (blob, tid))
                    new_ids.append(tid)
                    new_vectors.append(v)
            for digest, data in zip(digests, raw_images):
                cur = db.execute("INSERT INTO images(identity_id, sha256, data) VALUES (?, ?, x'')", (identity_id, digest))
                blob = self._cipher.seal(data, f"image:{cur.lastrowid}:{identity_id}".encode())
                db.execute("UPDATE images SET data = ? WHERE id = ?", (blob, cur.lastrowid))
            generation = self._bump_generation(db)
        index = self._template_index_after_write(generation)
        index.add(np.array(new_ids, np.int64), np.stack(new_vectors))
        index.save(self.path / INDEX_NAME, self._cipher, generation)
        self.audit.append(
            "enrol", actor=actor or self.actor, role=role or self.role, purpose=consent.purpose, inputs=digests,
            subjects=[pseudonym], scores=[], details={"templates": len(vectors), "masked_templates": len(new_ids) - len(vectors),
                                                      "consent_expires": consent.expires.isoformat()},
        )
        return EnrolResult(identity, len(vectors), tuple(notes))

    def _template_index_after_write(self, generation: int) -> TemplateIndex:
        # The in-memory index was current one generation ago: update it in place instead of rebuilding.
        if self._index is not None and self._index_generation == generation - 1:
            self._index_generation = generation
            return self._index
        return self.rebuild_index(generation)

    # --- search ------------------------------------------------------------------------------------------------

    def search(
        self,
        img: ImageInput | list[ImageInput],
        k: int = 10,
        *,
        purpose: str | None = None,
        crop: bool = False,
        actor: str | None = None,
        role: str | None = None,
    ) -> list[Candidate]:
        """The ``k`` most similar identities, best first, one entry each, with score and calibrated FAR.

        A candidate list is for a person to review, not a verdict: it always holds up to ``k`` entries, however
        weak; the FAR tells how often an impostor scores that high. ``img`` may be a list of pictures of one person
        (a video track's best frames): one search, on the mean of their embeddings (``probe_embedding``).
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        pictures = img if isinstance(img, list) else [img]
        vector, masked, used = self.probe_embedding(pictures, crop=crop)
        candidates = self._rank(vector, k, masked=masked)
        pseudonyms = self._pseudonyms([c.identity for c in candidates])
        candidates = [Candidate(c.identity, c.score, c.rank, c.far, masked) for c in candidates]
        details = {"k": k, "masked_probe": masked} | ({"pictures": len(pictures), "pictures_used": used}
                                                     if isinstance(img, list) else {})
        self.audit.append(
            "search", actor=actor or self.actor, role=role or self.role, purpose=purpose or NO_PURPOSE,
            inputs=[input_digest(p) for p in pictures], subjects=[pseudonyms[c.identity] for c in candidates],
            scores=[c.score for c in candidates], details=details,
        )
        return candidates

    def probe_embedding(self, pictures: Sequence[ImageInput], *, crop: bool = False) -> tuple[np.ndarray, bool, int]:
        """(embedding, masked, pictures used) of the person in ``pictures``: the largest face of each, averaged
        (``periface.match.mean_probe``: a steadier probe than any one face; rank-1 on LFW tracks of three masked
        pictures in ``benchmarks/track_search.py``). Pictures without a face are left out; when none has one, the
        first picture's ``NoFaceError`` is raised."""
        faces, first_error = [], None
        for picture in pictures:
            try:
                faces.append(self.engine.face(picture, crop=crop, name=describe(picture)))
            except NoFaceError as e:
                first_error = first_error or e
        if not faces:
            raise first_error or ValueError("no pictures to search with")
        return mean_probe(np.stack([f.embeddings[0] for f in faces]),
                          [bool(f.mask) and f.mask[0] != "none" for f in faces])

    def search_embedding(self, vector: np.ndarray, k: int = 10, *, masked: bool = False) -> list[Candidate]:
        """Rank identities for a probe embedding (no audit record: for evaluation code that audits itself)."""
        return self._rank(np.asarray(vector, np.float32), k, masked=masked)

    def _rank(self, vector: np.ndarray, k: int, *, masked: bool = False) -> list[Candidate]:
        """Best identities for a probe. A masked probe goes through the masked path when the engine has one."""
        engine = self.engine
        if masked and engine.has_masked_path:
            adapted = self._best_per_identity(engine.adapt(vector)[0], "plain", k)
            refs = self._best_per_identity(vector, "masked", k) if engine.masked_params.variants else {}
            w = engine.masked_params.weight_masked_refs
            best = {n: float(fuse(s, refs.get(n, float("nan")), w)) for n, s in adapted.items()}
            cal = engine.masked_calibration
        else:
            best = self._best_per_identity(vector, "plain", k)
            cal = engine.calibration
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:k]
        return [Candidate(name, score, rank + 1, float(cal.far(score)), masked) for rank, (name, score) in enumerate(ranked)]

    def _best_per_identity(self, vector: np.ndarray, kind: str, k: int) -> dict[str, float]:
        """Each identity's best template score of one kind, searching deeper until k identities are found."""
        index = self._template_index()
        total = len(index)
        depth = min(total, max(64, 16 * k))
        while True:
            scores, ids = index.search(vector, depth)
            best: dict[str, float] = {}
            if len(ids):
                rows = self._db.execute(
                    f"SELECT t.id, i.name FROM templates t JOIN identities i ON i.id = t.identity_id "
                    f"WHERE t.kind = ? AND t.id IN ({','.join('?' * len(ids))})", [kind] + [int(i) for i in ids],
                ).fetchall()
                owner = {r["id"]: r["name"] for r in rows}
                for score, tid in zip(scores, ids):
                    name = owner.get(int(tid))
                    if name is not None and name not in best:
                        best[name] = float(score)
            if len(best) >= k or depth >= total:
                return best
            depth = min(total, depth * 4)

    def pseudonym(self, name: str) -> str:
        """The random pseudonym that stands for ``name`` in the audit log (gone once the identity is erased)."""
        found = self._pseudonyms([name])
        if name not in found:
            raise UnknownIdentityError("no such identity in the gallery", source=name)
        return found[name]

    def _pseudonyms(self, names: list[str]) -> dict[str, str]:
        if not names:
            return {}
        rows = self._db.execute(
            f"SELECT name, pseudonym FROM identities WHERE name IN ({','.join('?' * len(names))})", names
        ).fetchall()
        return {r["name"]: r["pseudonym"] for r in rows}

    # --- read --------------------------------------------------------------------------------------------------

    def identities(self) -> list[IdentityInfo]:
        names = [r["name"] for r in self._db.execute("SELECT name FROM identities ORDER BY name")]
        return [self.identity(n) for n in names]

    def identity(self, name: str) -> IdentityInfo:
        row = self._db.execute("SELECT * FROM identities WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownIdentityError("no such identity in the gallery", source=name)
        counts = dict(
            self._db.execute(
                "SELECT kind, COUNT(*) FROM templates WHERE identity_id = ? GROUP BY kind", (row["id"],)
            ).fetchall()
        )
        c = self._db.execute(
            "SELECT * FROM consents WHERE identity_id = ? ORDER BY id DESC LIMIT 1", (row["id"],)
        ).fetchone()
        consent = Consent(
            subject=c["subject"], purpose=c["purpose"], collected_by=c["collected_by"],
            collected_at=c["collected_at"], expires=c["expires"], reference=c["reference"],
        )
        expires = self.retention.expires(last_used=row["last_used_at"], consent_expires=consent.expires)
        return IdentityInfo(name, counts.get("plain", 0), counts.get("masked", 0),
                            row["created_at"], row["last_used_at"], consent, expires)

    def __contains__(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM identities WHERE name = ?", (name,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM identities").fetchone()[0])

    # --- erase -------------------------------------------------------------------------------------------------

    def remove(self, identity: str, *, actor: str | None = None, role: str | None = None,
               purpose: str = ERASURE_PURPOSE, action: str = "erase") -> int:
        """Erase every trace of ``identity``: templates, masked variants, consent rows, stored images, index entries.

        SQLite's secure_delete zeroes the freed pages and VACUUM rewrites the file, so nothing lingers in free
        space; the audit log keeps only the identity's pseudonym, whose link to the name is deleted here.
        Returns the number of templates erased.
        """
        row = self._db.execute("SELECT id, pseudonym FROM identities WHERE name = ?", (identity,)).fetchone()
        if row is None:
            raise UnknownIdentityError("no such identity in the gallery", source=identity)
        ids = np.array([r[0] for r in self._db.execute(
            "SELECT id FROM templates WHERE identity_id = ?", (row["id"],))], np.int64)
        with store.transaction(self._db) as db:
            db.execute("DELETE FROM identities WHERE id = ?", (row["id"],))  # cascades to every child table
            generation = self._bump_generation(db)
        self._db.execute("VACUUM")
        index = self._template_index_after_write(generation)
        index.remove(ids)
        index.save(self.path / INDEX_NAME, self._cipher, generation)
        self.audit.append(action, actor=actor or self.actor, role=role or self.role, purpose=purpose,
                          inputs=[], subjects=[row["pseudonym"]], scores=[], details={"templates": int(len(ids))})
        return int(len(ids))

    def purge_expired(self, now: date | None = None, *, actor: str | None = None) -> list[str]:
        """Erase every identity whose consent or retention period has run out. Returns their names."""
        today = now or datetime.now(timezone.utc).date()
        due = [info.identity for info in self.identities() if info.expires <= today]
        for name in due:
            self.remove(name, actor=actor or self.actor, role="system", purpose="retention expiry", action="purge")
        return due

    # --- keys --------------------------------------------------------------------------------------------------

    def rotate_key(self, new_key: bytes, *, actor: str | None = None) -> int:
        """Re-encrypt every template and stored image under ``new_key`` in one transaction. Returns rows rewritten."""
        new = TemplateCipher(new_key)
        count = 0
        with store.transaction(self._db) as db:
            for r in db.execute("SELECT id, identity_id, vector FROM templates").fetchall():
                aad = f"template:{r['id']}:{r['identity_id']}".encode()
                db.execute("UPDATE templates SET vector = ? WHERE id = ?", (new.encrypt(self._cipher.decrypt(r["vector"], aad), aad), r["id"]))
                count += 1
            for r in db.execute("SELECT id, identity_id, data FROM images").fetchall():
                aad = f"image:{r['id']}:{r['identity_id']}".encode()
                db.execute("UPDATE images SET data = ? WHERE id = ?", (new.seal(self._cipher.unseal(r["data"], aad), aad), r["id"]))
                count += 1
            store.set_meta(db, "key_check", new.seal(b"periface", b"key-check").hex())
            audit_key = self._cipher.unseal(bytes.fromhex(store.get_meta(db, "audit_key") or ""), b"audit-key")
            store.set_meta(db, "audit_key", new.seal(audit_key, b"audit-key").hex())
            generation = self._bump_generation(db)
        self._db.execute("VACUUM")
        self._key, self._cipher = new_key, new
        self._index = None
        self._template_index()
        self.audit.append("rotate-key", actor=actor or self.actor, role="admin", purpose="key rotation",
                          inputs=[], subjects=[], scores=[], details={"rows": count, "generation": generation})
        return count

    def image(self, identity: str) -> list[bytes]:
        """Stored images of an identity (only in galleries created with ``keep_images=True``)."""
        row = self._db.execute("SELECT id FROM identities WHERE name = ?", (identity,)).fetchone()
        if row is None:
            raise UnknownIdentityError("no such identity in the gallery", source=identity)
        return [self._cipher.unseal(r["data"], f"image:{r['id']}:{row['id']}".encode())
                for r in self._db.execute("SELECT id, data FROM images WHERE identity_id = ?", (row["id"],))]

    def close(self) -> None:
        self._db.close()


def _image_bytes(rgb: np.ndarray) -> bytes:
    """The image as a JPEG thumbnail (max 256 px): enough for a reviewer, not a full-resolution copy."""
    import io

    from PIL import Image

    thumb = Image.fromarray(rgb)
    thumb.thumbnail((256, 256))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
