"""The operators' web page: server-rendered (Jinja2), a few lines of plain JavaScript, same rules as the API.

A login exchanges an API key for a session cookie (HttpOnly, SameSite=Strict) that holds only a random session
id; the key's role decides which views and buttons appear, and the service checks it again on every action.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..errors import PerifaceError
from .auth import PERMISSIONS, AuthError, KeyInfo
from .core import Principal, Service
from .schemas import DecisionIn

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

COOKIE = "periface_session"
_API_PREFIXES = ("/api/", "/health", "/docs", "/redoc", "/openapi.json", "/static/")


@dataclass
class Session:
    key_id: str
    purpose: str
    expires: float


class Sessions:
    def __init__(self) -> None:
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, key_id: str, purpose: str, ttl: float) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._items = {k: v for k, v in self._items.items() if v.expires > now}
            self._items[sid] = Session(key_id, purpose, now + ttl)
        return sid

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._items.get(sid)
            if session is None or session.expires < time.time():
                self._items.pop(sid, None)
                return None
            return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._items.pop(sid or "", None)


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(_API_PREFIXES)


def _service(request: Request) -> Service:
    return request.app.state.service


def _sessions(request: Request) -> Sessions:
    state = request.app.state
    if not hasattr(state, "sessions"):
        state.sessions = Sessions()
    return state.sessions


def _user(request: Request) -> Principal:
    """The logged-in key for this page request, or ``AuthError`` (which sends the browser to the login)."""
    session = _sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise AuthError("please log in")
    service = _service(request)
    key = service.keys.get(session.key_id)
    if key is None or not key.active:
        _sessions(request).drop(request.cookies.get(COOKIE))
        raise AuthError("this key has been revoked")
    service.buckets.take(key.id)
    return Principal(key=key, purpose=session.purpose)


def _check_origin(request: Request) -> None:
    """Refuse cross-site form posts (the cookie is SameSite=Strict already; this is the second lock)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        from .auth import ForbiddenError

        raise ForbiddenError("cross-site request refused")


def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    user: Principal | None = ctx.pop("user", None)
    perms = PERMISSIONS.get(user.key.role, frozenset()) if user else frozenset()
    return templates.TemplateResponse(
        request, name, {"user": user, "perms": perms, "message": None, "error": None, **ctx}, status_code=status
    )


def page_error(request: Request, exc: PerifaceError) -> Response:
    if isinstance(exc, AuthError):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    try:
        user = _user(request)
    except PerifaceError:
        user = None
    return render(request, "error.html", status=exc.http_status, user=user, error=exc.reason, code=exc.code)


def _home_for(key: KeyInfo) -> str:
    return "/audit" if key.role == "auditor" else "/search"


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return RedirectResponse(_home_for(_user(request).key), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "login.html", next=next if next.startswith("/") and not next.startswith("//") else "")


@router.post("/login")
def login(request: Request, key: str = Form(...), purpose: str = Form(...), next: str = Form("")) -> Response:
    _check_origin(request)
    service = _service(request)
    try:
        info = service.authenticate(key.strip())
    except AuthError as exc:
        return render(request, "login.html", status=401, error=str(exc.reason), next=next)
    purpose = purpose.strip()
    if len(purpose) < 3:
        return render(request, "login.html", status=400, error="state the purpose of this session", next=next)
    sid = _sessions(request).create(info.id, purpose, service.settings.session_ttl_s)
    target = next if next.startswith("/") and not next.startswith("//") and next != "/login" else _home_for(info)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        max_age=service.settings.session_ttl_s)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    _sessions(request).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


# --- enrol and erase ---------------------------------------------------------------------------------------


def _enrol_view(request: Request, user: Principal, status: int = 200, **ctx: Any) -> HTMLResponse:
    service = _service(request)
    service.authorize(user.key, "identities:read")
    return render(request, "enrol.html", status=status, user=user, identities=service.list_identities(), **ctx)


@router.get("/enrol", response_class=HTMLResponse)
def enrol_page(request: Request) -> Response:
    return _enrol_view(request, _user(request))


@router.post("/enrol", response_class=HTMLResponse)
def enrol(
    request: Request,
    name: str = Form(...),
    consent_purpose: str = Form(...),
    consent_collected_by: str = Form(...),
    consent_collected_at: str = Form(""),
    consent_expires: str = Form(""),
    consent_reference: str = Form(""),
    consent_given: str = Form(""),
    images: list[UploadFile] = File(...),
) -> Response:
    _check_origin(request)
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "enrol")
    if consent_given != "yes":
        return _enrol_view(request, user, status=403,
                           error="No consent, no enrolment: confirm that the signed consent form is held.")
    try:
        consent = service.consent(name, consent_purpose, consent_collected_by, consent_collected_at or None,
                                  consent_expires or None, consent_reference or None)
        datas = [service.read_upload(f) for f in images if f.filename]
        identity = service.enrol(user, name.strip(), datas, consent)
    except PerifaceError as exc:
        if isinstance(exc, AuthError):
            raise
        return _enrol_view(request, user, status=exc.http_status, error=exc.reason)
    return _enrol_view(request, user, message=f"Enrolled {identity.name} ({identity.templates or 0} templates).")


@router.post("/identities/{name}/erase", response_class=HTMLResponse)
def erase(request: Request, name: str, reason: str = Form("erasure request")) -> Response:
    _check_origin(request)
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "erase")
    result = service.erase(user.with_purpose(reason), name)
    return _enrol_view(request, user, message=f"Erased {result.erased}: templates, index entries and images "
                                              f"are gone (audit record #{result.audit_seq}).")


@router.get("/thumb/{name}")
def thumbnail(request: Request, name: str) -> Response:
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "identities:read")
    data = service.thumbnail(name)
    if data is None:
        return Response(status_code=404)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


# --- search and review -------------------------------------------------------------------------------------


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request) -> Response:
    user = _user(request)
    _service(request).authorize(user.key, "search")
    return render(request, "search.html", user=user, result=None)


@router.post("/search", response_class=HTMLResponse)
def search(request: Request, image: list[UploadFile] = File(...), k: int = Form(5), purpose: str = Form(""),
           ) -> Response:
    _check_origin(request)
    user = _user(request).with_purpose(purpose)
    service = _service(request)
    service.authorize(user.key, "search")
    photos = [service.read_upload(f) for f in image]
    try:
        result = service.search(user, photos, k)
    except PerifaceError as exc:
        if isinstance(exc, AuthError):
            raise
        return render(request, "search.html", status=exc.http_status, user=user, result=None, error=exc.reason)
    probes = ["data:image/jpeg;base64," + base64.b64encode(_small_jpeg(service, d)).decode("ascii") for d in photos]
    thumbs = {c.identity: service.thumbnail(c.identity) is not None for c in result.candidates}
    return render(request, "search.html", user=user, result=result, probes=probes, thumbs=thumbs)


def _small_jpeg(service: Service, data: bytes) -> bytes:
    import io

    from PIL import Image

    img = Image.fromarray(service.decode(data))
    img.thumbnail((240, 240))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)  # re-encoded from pixels: the probe's metadata never reaches the page
    return buf.getvalue()


@router.post("/decision", response_class=HTMLResponse)
def decision(
    request: Request,
    identity: str = Form(...),
    decision: str = Form(...),
    probe_sha256: str = Form(...),
    score: float | None = Form(None),
) -> Response:
    _check_origin(request)
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "decide")
    body = DecisionIn(identity=identity, decision=decision, probe_sha256=probe_sha256, score=score)  # type: ignore[arg-type]
    out = service.decide(user, body)
    verb = "Confirmed" if out.recorded == "confirm" else "Rejected"
    return render(request, "search.html", user=user, result=None,
                  message=f"{verb} {identity} as the person in the probe (audit record #{out.audit_seq}).")


# --- screening ---------------------------------------------------------------------------------------------


def _watch_files(service: Service) -> list[Path]:
    folder = service.settings.watch_dir
    if not folder or not Path(folder).is_dir():
        return []
    files = [p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)[:20]


@router.get("/screen", response_class=HTMLResponse)
def screen_page(request: Request, watch: str = "") -> Response:
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "screen")
    result = error = None
    latest = _watch_files(service)
    if watch and latest:
        try:
            result = service.screen(user, latest[0].read_bytes(), latest[0].name)
        except PerifaceError as exc:
            error = exc.reason
    return render(request, "screen.html", user=user, result=result, error=error,
                  watch_dir=service.settings.watch_dir, latest=latest[:5], watching=bool(watch))


@router.post("/screen", response_class=HTMLResponse)
def screen(request: Request, image: UploadFile = File(...), purpose: str = Form("")) -> Response:
    _check_origin(request)
    user = _user(request).with_purpose(purpose)
    service = _service(request)
    service.authorize(user.key, "screen")
    try:
        result = service.screen(user, service.read_upload(image), image.filename or "frame")
        error = None
    except PerifaceError as exc:
        if isinstance(exc, AuthError):
            raise
        result, error = None, exc.reason
    return render(request, "screen.html", user=user, result=result, error=error,
                  watch_dir=service.settings.watch_dir, latest=_watch_files(service)[:5], watching=False)


# --- audit -------------------------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, action: str = "", actor: str = "", subject: str = "", since: str = "",
               until: str = "", limit: int = 200) -> Response:
    user = _user(request)
    service = _service(request)
    service.authorize(user.key, "audit")
    filters = {"action": action or None, "actor": actor or None, "subject": subject or None,
               "since": since or None, "until": until or None, "limit": max(1, min(limit, 5000))}
    try:
        records = service.audit_records(**filters)
        error = None
    except ValueError as exc:
        records, error = [], f"bad filter: {exc}"
    report = service.audit_verify()
    return render(request, "audit.html", user=user, records=list(reversed(records)), report=report,
                  filters=filters, error=error)
