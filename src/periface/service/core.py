"""What the API and the web page both call: one ``Service`` over one gallery, with the same rules for both."""

from __future__ import annotations

import base64
import dataclasses
import io
import os
import queue
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from fastapi import UploadFile
from PIL import Image

from ..config import Settings
from ..errors import ConsentError, ImageError, ImageTooLargeError, PerifaceError, PurposeRequiredError
from ..image import load_image
from ..privacy.audit import ERASURE_PURPOSE, AuditRecord, AuditReport, sha256_hex, stated_purpose
from ..privacy.consent import Consent
from .auth import PERMISSIONS, AuthError, ForbiddenError, KeyInfo, KeyStore
from .limits import OperatingPointError, PhotoCountError, ServiceSettings, TokenBuckets, UploadTooLargeError
from .schemas import (
    CandidateOut,
    ConsentOut,
    DecisionIn,
    DecisionOut,
    DetectResponse,
    ErasureOut,
    FaceOut,
    IdentityOut,
    ScreenResponse,
    SearchResponse,
    VerifyResponse,
)

if TYPE_CHECKING:
    from ..gallery import IdentityInfo

KEYS_FILE = "keys.sqlite"


class ServiceUnavailableError(PerifaceError):
    code = "not_implemented"
    exit_code = 15
    http_status = 501


@dataclass(frozen=True)
class Principal:
    """Who is asking (their key) and why (the purpose of this request)."""

    key: KeyInfo
    purpose: str | None = None

    def with_purpose(self, purpose: str | None) -> "Principal":
        purpose = (purpose or "").strip() or self.purpose
        return dataclasses.replace(self, purpose=purpose)

    def need_purpose(self) -> str:
        return stated_purpose(self.purpose, "an X-Purpose header or a purpose field")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Service:
    """One gallery, its engine, its API keys and its limits. Thread-safe: model work is serialised."""

    def __init__(
        self,
        gallery_dir: Path,
        settings: ServiceSettings,
        *,
        engine_settings: Settings | None = None,
        gallery: Any = None,
        engine: Any = None,
        keep_images: bool = False,
    ) -> None:
        from .. import __version__

        self.version = __version__
        self.gallery_dir = Path(gallery_dir)
        self.settings = settings
        self.image_settings = (engine_settings or Settings()).model_copy(
            update={"max_pixels": settings.max_pixels, "max_bytes": settings.max_upload_bytes}
        )
        if gallery is None:
            from ..gallery import Gallery

            from ..privacy.retention import RetentionPolicy

            retention = RetentionPolicy(settings.retention_days) if settings.retention_days else None
            gallery = Gallery(self.gallery_dir, engine=engine, keep_images=keep_images, retention=retention)
        self.gallery = gallery
        self._given_engine = engine
        # Engines for the gallery-free work (detect, verify, redact), one per concurrent request: the models are
        # not known to be thread-safe, but OpenCV and ONNX Runtime release the GIL, so two engines use two cores.
        self._pool: queue.Queue = queue.Queue()
        self._pool_size = 1 if engine is not None else max(1, settings.workers)
        self._pool_created = 0
        self._pool_lock = threading.Lock()
        self.keys = KeyStore(self.gallery_dir / KEYS_FILE)
        self.buckets = TokenBuckets(settings.rate_per_second, settings.rate_burst)
        # The gallery (SQLite connection, FAISS index, its own engine) serves one request at a time.
        self.gallery_lock = threading.Lock()
        self.thermal_lock = threading.Lock()
        self.redact_lock = threading.Lock()
        self._screener: Any = None
        self._crowd: Any = None
        self._crowd_lock = threading.Lock()

    @contextmanager
    def engine(self) -> Iterator[Any]:
        """An engine from the pool, for one request; created on first need, up to ``settings.workers``."""
        try:
            engine = self._pool.get_nowait()
        except queue.Empty:
            with self._pool_lock:
                create = self._pool_created < self._pool_size
                if create:
                    self._pool_created += 1
            engine = self._new_engine() if create else self._pool.get()
        try:
            yield engine
        finally:
            self._pool.put(engine)

    def _new_engine(self) -> Any:
        if self._given_engine is not None:
            return self._given_engine
        from ..engine import Engine

        # each pooled engine gets its share of the cores: N engines each spinning on every core only contend
        threads = max(1, (os.cpu_count() or 1) // self._pool_size)
        import cv2

        cv2.setNumThreads(threads)  # process-wide: YuNet's OpenCV threads share the cores the same way
        return Engine(self.gallery.embedder_name, settings=self.image_settings.model_copy(update={"threads": threads}))

    @property
    def audit(self) -> Any:
        return self.gallery.audit

    # --- who may do what ------------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> KeyInfo:
        key = self.keys.authenticate(token)
        self.buckets.take(key.id)
        return key

    def authorize(self, key: KeyInfo, permission: str) -> None:
        if not key.allows(permission):
            allowed = sorted(r for r, perms in PERMISSIONS.items() if permission in perms)
            raise ForbiddenError(f"a {key.role} key may not do this ({permission}); it needs: {', '.join(allowed)}")

    # --- inputs ------------------------------------------------------------------------------------------------

    def read_upload(self, upload: UploadFile) -> bytes:
        data = upload.file.read(self.settings.max_upload_bytes + 1)
        if len(data) > self.settings.max_upload_bytes:
            raise UploadTooLargeError(f"upload is over the {self.settings.max_upload_bytes}-byte limit",
                                      source=upload.filename)
        return data

    def decode(self, data: bytes, name: str | None = None) -> np.ndarray:
        return load_image(data, self.image_settings, name=name)

    def check_image(self, data: bytes, name: str | None = None) -> bytes:
        """Refuse what is not an image or is over the pixel limit from the header alone, before any decoding.

        The bytes themselves go on to the gallery, so that the audit log's input hash is the hash of the file
        the client sent (the same one a reviewer's confirm or reject refers to).
        """
        label = name or f"<{len(data)} bytes>"
        if not data:
            raise ImageError("empty upload (0 bytes)", source=label)
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except Exception:
            raise ImageError("not an image, or an unsupported format", source=label) from None
        if width * height > self.settings.max_pixels:
            raise ImageTooLargeError(
                f"{width}x{height} = {width * height} pixels, over the {self.settings.max_pixels}-pixel limit",
                source=label,
            )
        return data

    @staticmethod
    def consent(subject: str, purpose: str, collected_by: str, collected_at: str | None, expires: str | None,
                reference: str | None) -> Consent:
        fields: dict[str, Any] = {"subject": subject, "purpose": purpose, "collected_by": collected_by,
                                  "reference": reference or None}
        if collected_at:
            fields["collected_at"] = collected_at
        if expires:
            fields["expires"] = expires
        try:
            return Consent(**fields)
        except ValueError as exc:
            raise ConsentError(f"the consent record is not valid: {exc}") from None

    # --- operations -------------------------------------------------------------------------------------------

    def detect(self, p: Principal, data: bytes, crowd: bool = False, min_probability: float | None = None,
               ) -> DetectResponse:
        """Every face with its mask state; ``crowd`` searches with the crowd finder (many small, masked faces, as
        ``periface detect --crowd``) instead of the photo finder, at its fitted operating point or at
        ``min_probability``."""
        p.need_purpose()
        if min_probability is not None and not crowd:
            raise OperatingPointError("min_probability applies to the crowd finder's calibrated scores: send crowd=true")
        rgb = self.decode(data)
        with self.engine() as engine:
            faces = engine.describe(rgb, self.crowd_finder().find(rgb, min_probability), embed=False) if crowd \
                else engine.analyze(rgb, embed=False)
        out = [FaceOut(**{k: v for k, v in record.items() if k != "detector"}) for record in faces.to_records()]
        return DetectResponse(width=int(rgb.shape[1]), height=int(rgb.shape[0]), faces=out)

    def crowd_finder(self) -> Any:
        """One crowd finder for every request, loaded on first need (it keeps one detector per thread)."""
        with self._crowd_lock:
            if self._crowd is None:
                from ..detect.crowd import CrowdFinder

                self._crowd = CrowdFinder.default()
            return self._crowd

    def verify(self, p: Principal, a: bytes, b: bytes) -> VerifyResponse:
        purpose = p.need_purpose()
        img_a, img_b = self.check_image(a, "a"), self.check_image(b, "b")
        with self.engine() as engine:
            result = engine.verify(img_a, img_b)
        self.audit.append(
            "verify", actor=p.key.id, role=p.key.role, purpose=purpose, inputs=[sha256_hex(a), sha256_hex(b)],
            subjects=[], scores=[float(result.score)], details={"same": bool(result.same)},
        )
        return VerifyResponse(
            same=bool(result.same), score=round(float(result.score), 4), threshold=round(float(result.threshold), 4),
            far=float(f"{float(result.far):.3g}"), target_far=result.target_far, notes=list(result.notes),
        )

    def enrol(self, p: Principal, name: str, images: list[bytes], consent: Consent) -> IdentityOut:
        if not images:
            raise ConsentError("enrolment needs at least one photo")
        p.need_purpose()
        arrays = [self.check_image(d, f"image {i + 1}") for i, d in enumerate(images)]
        with self.gallery_lock:
            self.gallery.enroll(name, arrays, consent=consent, actor=p.key.id, role=p.key.role)
        return self.read_identity(name)

    def list_identities(self) -> list[IdentityOut]:
        with self.gallery_lock:
            items = list(self.gallery.identities())
        return [self._identity_out(i, kept=self.gallery.keep_images) for i in items]

    def read_identity(self, name: str) -> IdentityOut:
        with self.gallery_lock:
            info = self.gallery.identity(name)  # raises UnknownIdentityError
        return self._identity_out(info, kept=self.gallery.keep_images)

    @staticmethod
    def _identity_out(info: IdentityInfo, *, kept: bool) -> IdentityOut:
        c = info.consent
        return IdentityOut(
            name=info.identity,
            templates=info.templates,
            enrolled=_text(info.created_at),
            last_used=_text(info.last_used_at),
            expires=_text(info.expires),
            has_images=kept,
            masked_templates=info.masked_templates,
            consent=ConsentOut(purpose=c.purpose, collected_by=c.collected_by, collected_at=c.collected_at,
                               expires=c.expires, reference=c.reference),
        )

    def erase(self, p: Principal, name: str) -> ErasureOut:
        purpose = p.with_purpose(p.purpose or ERASURE_PURPOSE).need_purpose()
        with self.gallery_lock:
            self.gallery.remove(name, actor=p.key.id, role=p.key.role, purpose=purpose)
        last = self.audit.records(action="erase", limit=1)
        return ErasureOut(erased=name, audit_seq=last[0].seq if last else None)

    def search(self, p: Principal, photos: list[bytes], k: int) -> SearchResponse:
        """One audited search for the person in ``photos``: one photo, or several of the same person searched on
        the mean of their faces (``Gallery.search`` with a list; photos without a face are left out)."""
        purpose = p.need_purpose()
        if not 1 <= len(photos) <= self.settings.max_search_photos:
            raise PhotoCountError(f"{len(photos)} photos; a search takes 1 to {self.settings.max_search_photos}")
        k = max(1, min(int(k), self.settings.max_k))
        probes = [self.check_image(d, "probe" if len(photos) == 1 else f"probe {i + 1}") for i, d in enumerate(photos)]
        with self.gallery_lock:
            found = self.gallery.search(probes[0] if len(probes) == 1 else probes, k=k, purpose=purpose,
                                        actor=p.key.id, role=p.key.role)
        candidates = [
            CandidateOut(
                identity=c.identity, rank=c.rank, score=round(float(c.score), 4),
                far=float(f"{float(c.far):.3g}"), masked=c.masked_probe,
            )
            for c in found
        ]
        digests = [sha256_hex(d) for d in photos]
        return SearchResponse(probe_sha256=digests[0], probes=digests, purpose=purpose, candidates=candidates)

    def pseudonym(self, name: str) -> str:
        """The gallery's pseudonym of ``name``: the only way a person appears in the audit log."""
        return self.gallery.pseudonym(name)

    def decide(self, p: Principal, body: DecisionIn) -> DecisionOut:
        purpose = p.need_purpose()
        with self.gallery_lock:
            pseudonym = self.pseudonym(body.identity)
        details: dict[str, Any] = {}
        if body.note:
            details["note"] = body.note
        record = self.audit.append(
            body.decision, actor=p.key.id, role=p.key.role, purpose=purpose, inputs=[body.probe_sha256],
            subjects=[pseudonym], scores=[] if body.score is None else [float(body.score)], details=details,
        )
        return DecisionOut(recorded=body.decision, audit_seq=record.seq)

    def screen(self, p: Principal, data: bytes, filename: str) -> ScreenResponse:
        """Fever screening of one radiometric frame with ``periface.thermal``; 501 when it is not installed."""
        purpose = p.need_purpose()
        thermal = _thermal()
        suffix = "".join(c for c in Path(filename).suffix.lower()[:8] if c.isalnum() or c == ".") or ".jpg"
        with tempfile.TemporaryDirectory(prefix="periface-screen-") as tmp:
            path = Path(tmp) / ("frame" + suffix)
            path.write_bytes(data)
            with self.thermal_lock:
                frame = thermal.read_thermal(path)
                if self._screener is None:
                    self._screener = thermal.Screener()  # keeps the running population median across frames
                result = thermal.screen_frame(frame, screener=self._screener)
                overlay = thermal.annotate(frame, result)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(overlay, dtype=np.uint8)).save(buf, "PNG")
        keep = ("box", "core_c", "canthus_c", "flag", "reasons", "measurable", "masked", "distance_m", "notes")
        people = [{k: _plain(getattr(f, k, None)) for k in keep} for f in result.faces]
        flagged = sum(1 for f in result.faces if f.flag)
        self.audit.append(
            "screen", actor=p.key.id, role=p.key.role, purpose=purpose, inputs=[sha256_hex(data)], subjects=[],
            scores=[float(f.core_c) for f in result.faces if f.core_c is not None],
            details={"people": len(people), "flagged": flagged},
        )
        temperature = getattr(frame, "temperature", None)
        height, width = (temperature.shape[:2] if temperature is not None else (None, None))
        return ScreenResponse(
            width=width, height=height, people=people, flagged=flagged,
            details={"overlay_png": base64.b64encode(buf.getvalue()).decode("ascii"),
                     "ambient_c": _plain(result.ambient_c), "population_median_c": _plain(result.population_median_c),
                     "blackbody_offset_c": _plain(result.blackbody_offset_c), "notice": result.notice},
        )

    def redact(self, p: Principal, data: bytes, filename: str, method: str, margin: float) -> tuple[bytes, str, int]:
        purpose = p.need_purpose()
        from ..privacy.redact import default_detector, redact_image

        rgb = self.decode(data)
        if self._given_engine is not None:  # tests inject an engine: use its detector
            with self.engine() as engine:
                boxes = np.asarray(engine.analyze(rgb, embed=False, mask=False).boxes).reshape(-1, 4)
        else:
            with self.redact_lock:  # the same recall-tuned detector as `periface redact`
                boxes = default_detector(rgb)
        out = redact_image(rgb, boxes, method=method, margin=margin)  # type: ignore[arg-type]
        fmt, media = ("PNG", "image/png") if Path(filename).suffix.lower() == ".png" else ("JPEG", "image/jpeg")
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
        self.audit.append("redact", actor=p.key.id, role=p.key.role, purpose=purpose, inputs=[sha256_hex(data)],
                          subjects=[], scores=[], details={"faces": int(len(boxes)), "method": method})
        return buf.getvalue(), media, int(len(boxes))

    def audit_records(self, **filters: Any) -> list[AuditRecord]:
        return self.audit.records(**filters)

    def audit_verify(self) -> AuditReport:
        return self.audit.verify()

    def create_key(self, p: Principal | None, role: str, label: str = "") -> tuple[KeyInfo, str]:
        key_id, token = self.keys.create(role, label)
        actor, actor_role = (p.key.id, p.key.role) if p else ("cli", "admin")
        self.audit.append("key-create", actor=actor, role=actor_role, purpose="key management", inputs=[],
                          subjects=[], scores=[], details={"key": key_id, "role": role})
        info = self.keys.get(key_id)
        assert info is not None
        return info, token

    def revoke_key(self, p: Principal | None, key_id: str) -> KeyInfo:
        info = self.keys.revoke(key_id)
        actor, actor_role = (p.key.id, p.key.role) if p else ("cli", "admin")
        self.audit.append("key-revoke", actor=actor, role=actor_role, purpose="key management", inputs=[],
                          subjects=[], scores=[], details={"key": key_id})
        return info

    def purge(self) -> int:
        with self.gallery_lock:
            removed = self.gallery.purge_expired()
        return len(removed) if isinstance(removed, (list, tuple, set)) else int(removed or 0)

    def thumbnail(self, name: str) -> bytes | None:
        """A small JPEG of a kept image of ``name``; ``None`` when the gallery keeps no images."""
        getter = getattr(self.gallery, "thumbnail", None) or getattr(self.gallery, "image", None)
        if getter is None:
            return None
        with self.gallery_lock:
            try:
                img = getter(name)
            except PerifaceError:
                return None
        if isinstance(img, (list, tuple)):
            img = img[0] if img else None
        if img is None:
            return None
        if isinstance(img, (bytes, bytearray)):
            return bytes(img)
        pil = Image.fromarray(np.asarray(img, dtype=np.uint8))
        pil.thumbnail((160, 160))
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=85)
        return buf.getvalue()


def _thermal() -> Any:
    """``periface.thermal`` when it provides screening; else a 501 ``not_implemented`` error."""
    try:
        from .. import thermal
    except ImportError:
        thermal = None  # type: ignore[assignment]
    needed = ("read_thermal", "screen_frame", "Screener", "annotate")
    if thermal is None or not all(hasattr(thermal, n) for n in needed):
        raise ServiceUnavailableError("thermal screening is not available in this build (periface.thermal)")
    return thermal


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape}>"
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (date,)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


__all__ = ["Principal", "Service", "ServiceUnavailableError", "PurposeRequiredError", "AuthError", "KEYS_FILE"]
