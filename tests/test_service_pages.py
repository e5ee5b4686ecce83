"""The web page without a browser: sessions, role-dependent views, and the background retention purge."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from periface.privacy.audit import AuditLog
from periface.service import create_app
from periface.service.limits import ServiceSettings


class _Gallery:
    """Just enough gallery for pages that list nobody, and a purge counter."""

    keep_images = False

    def __init__(self, path: Path) -> None:
        self.audit = AuditLog(path / "audit.log", b"k" * 32, fsync=False)
        self.purges = 0

    def identities(self) -> list:
        return []

    def purge_expired(self) -> list[str]:
        self.purges += 1
        return []


def _app(tmp_path: Path, **settings):
    gallery = _Gallery(tmp_path)
    app = create_app(tmp_path / "g", ServiceSettings(rate_per_second=0, **settings), gallery=gallery, engine=object())
    return app, gallery


def _login(client: TestClient, token: str, purpose: str = "testing pages"):
    return client.post("/login", data={"key": token, "purpose": purpose}, follow_redirects=False)


def test_pages_need_a_session(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    client = TestClient(app)
    for path in ("/", "/search", "/enrol", "/audit", "/screen"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert client.get("/login").status_code == 200


def test_login_sets_an_httponly_strict_cookie_without_the_key(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    token = app.state.service.create_key(None, "operator")[1]
    client = TestClient(app)
    r = _login(client, token)
    assert r.status_code == 303 and r.headers["location"] == "/search"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and token.lower() not in cookie
    assert client.get("/enrol").status_code == 200
    assert client.get("/audit").status_code == 403  # an operator has no audit view
    assert _login(TestClient(app), "pfk_wrong").status_code == 401
    assert _login(TestClient(app), token, purpose="").status_code in (400, 422)


def test_auditor_sees_only_the_audit(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    token = app.state.service.create_key(None, "auditor")[1]
    client = TestClient(app)
    assert _login(client, token).headers["location"] == "/audit"
    page = client.get("/audit")
    assert page.status_code == 200 and "Chain verifies" in page.text
    for path in ("/enrol", "/search", "/screen"):
        assert client.get(path).status_code == 403, path
    assert client.post("/identities/x/erase", data={"reason": "x"}).status_code == 403


def test_revoking_a_key_ends_its_sessions(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    service = app.state.service
    info, token = service.create_key(None, "operator")
    client = TestClient(app)
    _login(client, token)
    assert client.get("/search").status_code == 200
    service.revoke_key(None, info.id)
    assert client.get("/search", follow_redirects=False).status_code == 303


def test_cross_site_posts_are_refused(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    token = app.state.service.create_key(None, "admin")[1]
    client = TestClient(app)
    _login(client, token)
    r = client.post("/identities/x/erase", data={"reason": "x"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403


def test_enrol_page_requires_the_consent_checkbox(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, purge_interval_s=0)
    token = app.state.service.create_key(None, "operator")[1]
    client = TestClient(app)
    _login(client, token)
    r = client.post("/enrol", data={"name": "x", "consent_purpose": "door access", "consent_collected_by": "me"},
                    files=[("images", ("a.jpg", b"not used", "image/jpeg"))])
    assert r.status_code == 403 and "No consent, no enrolment" in r.text


def test_background_purge_runs(tmp_path: Path) -> None:
    app, gallery = _app(tmp_path, purge_interval_s=0.05)
    with TestClient(app):
        deadline = time.monotonic() + 5
        while gallery.purges < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert gallery.purges >= 2
