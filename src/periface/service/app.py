"""The HTTP service: a JSON API under ``/api`` and the operators' web page, both over one gallery.

Privacy is enforced by the gallery (consent, retention, erasure, audit); the service adds who may do what
(API keys with roles), the purpose of every request, and limits (upload size, pixels, rate per key).

>>> app = create_app("galleries/office")                      # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)   # doctest: +SKIP
"""

# No "from __future__ import annotations": FastAPI resolves the route annotations, some of them local names.

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import PerifaceError
from .auth import KeyInfo, KeyStore
from .core import Principal, Service, ServiceUnavailableError
from .limits import ServiceSettings, UploadTooLargeError
from .schemas import (
    AuditPage,
    AuditReport,
    DecisionIn,
    DecisionOut,
    DetectResponse,
    ErasureOut,
    ErrorResponse,
    Health,
    IdentityList,
    IdentityOut,
    KeyCreated,
    KeyCreateIn,
    KeyOut,
    ScreenResponse,
    SearchResponse,
    VerifyResponse,
)

log = logging.getLogger("periface.service")

HERE = Path(__file__).parent
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 422, 429, 501)
}


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by ``Content-Length`` or while streaming."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = _error_response(
                UploadTooLargeError(f"request body of {int(length)} bytes is over the {self.max_bytes}-byte limit")
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLargeError(f"request body is over the {self.max_bytes}-byte limit")
            return message

        await self.app(scope, limited, send)


def _error_response(exc: PerifaceError, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": exc.code, "message": exc.reason if exc.source is None else str(exc)}
    if details is not None:
        body["details"] = details
    headers = {}
    if getattr(exc, "retry_after", None) is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))  # type: ignore[attr-defined]
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": body}, status_code=exc.http_status, headers=headers)


def create_app(
    gallery_dir: str | Path,
    settings: ServiceSettings | None = None,
    *,
    engine_settings: Settings | None = None,
    gallery: Any = None,
    engine: Any = None,
    keep_images: bool = False,
) -> FastAPI:
    """The FastAPI app for the gallery at ``gallery_dir`` (created if absent).

    ``gallery`` and ``engine`` may be passed in (tests pass small fakes); by default the real ``Gallery`` and
    ``Engine`` are opened. ``keep_images`` only matters when the gallery is created here.
    """
    settings = settings or ServiceSettings()
    service = Service(
        Path(gallery_dir), settings, engine_settings=engine_settings, gallery=gallery, engine=engine,
        keep_images=keep_images,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.purge_interval_s > 0:
            task = asyncio.create_task(_purge_loop(service, settings.purge_interval_s))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="periface",
        version=service.version,
        description="Masked-face recognition over one consented gallery. Every request names its purpose "
        "(`X-Purpose` header or `purpose` field) and is written to a hash-chained audit log.",
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)

    @app.exception_handler(PerifaceError)
    async def _periface_error(request: Request, exc: PerifaceError) -> Response:
        from .pages import is_page, page_error

        if is_page(request):
            return page_error(request, exc)
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        err = PerifaceError("the request is malformed: " + "; ".join(f"{d['where']}: {d['problem']}" for d in details))
        err.code, err.http_status = "invalid_request", 422
        return _error_response(err, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        err = PerifaceError(str(exc.detail))
        err.code, err.http_status = codes.get(exc.status_code, "http_error"), exc.status_code
        return _error_response(err)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        route = request.scope.get("route")
        # The route's template, not the path: a path can carry a person's name.
        log.exception("unhandled error on %s %s", request.method, getattr(route, "path", "?"))
        err = PerifaceError("internal error; the service log has the details")
        err.code, err.http_status = "internal_error", 500
        return _error_response(err)

    # --- dependencies ----------------------------------------------------------------------------------------

    def principal(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
        x_purpose: Annotated[str | None, Header(max_length=500)] = None,
    ) -> Principal:
        token = x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        key = service.authenticate(token)
        return Principal(key=key, purpose=(x_purpose or "").strip() or None)

    def need(permission: str) -> Any:
        def check(p: Annotated[Principal, Depends(principal)]) -> Principal:
            service.authorize(p.key, permission)
            return p

        return Depends(check)

    Purpose = Annotated[str | None, Form(max_length=500, description="why; or the X-Purpose header")]
    Crowd = Annotated[bool, Form(description="the crowd finder: many small, masked faces (scenes, crowds)")]
    MinProbability = Annotated[float | None, Form(ge=0.0, le=1.0, description=(
        "with crowd: keep faces of at least this calibrated probability instead of the fitted operating point"))]

    # --- API ---------------------------------------------------------------------------------------------------

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness; needs no key and says nothing about the gallery."""
        return Health(version=service.version)

    @app.post("/api/detect", response_model=DetectResponse, tags=["faces"])
    def detect(p: Annotated[Principal, need("detect")], image: UploadFile = File(...), purpose: Purpose = None,
               crowd: Crowd = False, min_probability: MinProbability = None) -> DetectResponse:
        """Faces in an image: boxes, scores, landmarks, mask state. Nothing is stored."""
        return service.detect(p.with_purpose(purpose), service.read_upload(image), crowd, min_probability)

    @app.post("/api/mask", response_model=DetectResponse, tags=["faces"])
    def mask(p: Annotated[Principal, need("detect")], image: UploadFile = File(...), purpose: Purpose = None,
             crowd: Crowd = False, min_probability: MinProbability = None) -> DetectResponse:
        """Mask state of every face (none, correct, incorrect), P(mask), whether nose and mouth show. Nothing is
        stored."""
        return service.detect(p.with_purpose(purpose), service.read_upload(image), crowd, min_probability)

    @app.post("/api/verify", response_model=VerifyResponse, tags=["recognition"])
    def verify(p: Annotated[Principal, need("verify")], a: UploadFile = File(...), b: UploadFile = File(...),
               purpose: Purpose = None) -> VerifyResponse:
        """1:1: are the largest faces of ``a`` and ``b`` the same person? Logged (hashes and score only)."""
        return service.verify(p.with_purpose(purpose), service.read_upload(a), service.read_upload(b))

    @app.post("/api/identities", response_model=IdentityOut, status_code=201, tags=["identities"])
    def enrol(
        p: Annotated[Principal, need("enrol")],
        name: Annotated[str, Form(min_length=1, max_length=200)],
        consent_purpose: Annotated[str, Form(min_length=3, max_length=500)],
        consent_collected_by: Annotated[str, Form(min_length=1, max_length=200)],
        images: list[UploadFile] = File(...),
        consent_collected_at: Annotated[str | None, Form()] = None,
        consent_expires: Annotated[str | None, Form()] = None,
        consent_reference: Annotated[str | None, Form(max_length=500)] = None,
        purpose: Purpose = None,
    ) -> IdentityOut:
        """Enrol a person with their explicit consent record (no consent, no enrolment)."""
        consent = service.consent(name, consent_purpose, consent_collected_by, consent_collected_at,
                                  consent_expires, consent_reference)
        datas = [service.read_upload(f) for f in images]
        return service.enrol(p.with_purpose(purpose or consent.purpose), name, datas, consent)

    @app.get("/api/identities", response_model=IdentityList, tags=["identities"])
    def list_identities(p: Annotated[Principal, need("identities:read")]) -> IdentityList:
        return IdentityList(identities=service.list_identities())

    @app.get("/api/identities/{name}", response_model=IdentityOut, tags=["identities"])
    def read_identity(name: str, p: Annotated[Principal, need("identities:read")]) -> IdentityOut:
        return service.read_identity(name)

    @app.delete("/api/identities/{name}", response_model=ErasureOut, tags=["identities"])
    def erase(name: str, p: Annotated[Principal, need("erase")],
              purpose: Annotated[str | None, Query(max_length=500)] = None) -> ErasureOut:
        """Erase a person: templates, masked variants, index entries, caches and any kept image."""
        return service.erase(p.with_purpose(purpose), name)

    @app.post("/api/search", response_model=SearchResponse, tags=["recognition"])
    def search(p: Annotated[Principal, need("search")],
               image: list[UploadFile] = File(..., description="a photo of the person sought; repeat the field for "
                                                              "several photos of the same person"),
               k: Annotated[int, Form(ge=1)] = 10, purpose: Purpose = None) -> SearchResponse:
        """1:N: the top-k candidates with score and FAR, for a person to review. Logged.

        Several photos of one person (the field repeated) make one search on the mean of their faces."""
        return service.search(p.with_purpose(purpose), [service.read_upload(f) for f in image], k)

    @app.post("/api/decisions", response_model=DecisionOut, tags=["recognition"])
    def decide(body: DecisionIn, p: Annotated[Principal, need("decide")],
               purpose: Annotated[str | None, Query(max_length=500)] = None) -> DecisionOut:
        """A reviewer confirms or rejects a candidate; the decision is logged."""
        return service.decide(p.with_purpose(purpose), body)

    @app.post("/api/screen", response_model=ScreenResponse, tags=["thermal"])
    def screen(p: Annotated[Principal, need("screen")], image: UploadFile = File(...),
               purpose: Purpose = None) -> ScreenResponse:
        """Thermal fever screening of a radiometric frame. Logged."""
        return service.screen(p.with_purpose(purpose), service.read_upload(image), image.filename or "frame")

    @app.post("/api/redact", tags=["privacy"], response_class=Response,
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
    def redact(p: Annotated[Principal, need("redact")], image: UploadFile = File(...),
               method: Annotated[str, Form(pattern="^(blur|pixelate)$")] = "blur",
               margin: Annotated[float, Form(ge=0, le=2)] = 0.25, purpose: Purpose = None) -> Response:
        """Every face blurred or pixelated; returned without any metadata (EXIF, GPS, XMP)."""
        data, media, faces = service.redact(p.with_purpose(purpose), service.read_upload(image),
                                            image.filename or "image.png", method, margin)
        return Response(data, media_type=media, headers={"X-Faces": str(faces)})

    @app.get("/api/audit", response_model=AuditPage, tags=["audit"])
    def audit(
        p: Annotated[Principal, need("audit")],
        action: str | None = None, actor: str | None = None, subject: str | None = None,
        since: str | None = None, until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> AuditPage:
        return AuditPage(records=service.audit_records(action=action, actor=actor, subject=subject, since=since,
                                                       until=until, limit=limit))

    @app.get("/api/audit/verify", response_model=AuditReport, tags=["audit"])
    def audit_verify(p: Annotated[Principal, need("audit")]) -> AuditReport:
        return service.audit_verify()

    @app.get("/api/keys", response_model=list[KeyOut], tags=["keys"])
    def keys(p: Annotated[Principal, need("keys")]) -> list[KeyOut]:
        return [KeyOut(**vars(k)) for k in service.keys.list()]

    @app.post("/api/keys", response_model=KeyCreated, status_code=201, tags=["keys"])
    def create_key(body: KeyCreateIn, p: Annotated[Principal, need("keys")]) -> KeyCreated:
        """A new key; its plaintext is in this response only."""
        info, token = service.create_key(p, body.role, body.label)
        return KeyCreated(**vars(info), key=token)

    @app.delete("/api/keys/{key_id}", response_model=KeyOut, tags=["keys"])
    def revoke_key(key_id: str, p: Annotated[Principal, need("keys")]) -> KeyOut:
        return KeyOut(**vars(service.revoke_key(p, key_id)))

    # --- the web page ----------------------------------------------------------------------------------------

    from .pages import router as pages_router

    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


async def _purge_loop(service: Service, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await asyncio.to_thread(service.purge)
            if removed:
                log.info("retention: purged %d expired identities", removed)
        except Exception:  # the loop must survive one failed run; the next one retries
            log.exception("retention purge failed")


__all__ = ["create_app", "BodyLimit", "KeyInfo", "KeyStore", "ServiceUnavailableError"]
