"""The web page in a real browser: enrol -> search -> confirm -> erase, each role in its own session.

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package (no ``playwright install``:
the system browser is used). Screenshots go to $PERIFACE_SCREENSHOTS (set it to docs/img to refresh the README's
pictures), else to the test's temporary folder, so that a test run never rewrites tracked files.
"""

from __future__ import annotations

import os

import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

import uvicorn  # noqa: E402

from periface.service import create_app  # noqa: E402
from periface.service.limits import ServiceSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHOTS_ENV = "PERIFACE_SCREENSHOTS"
NAME = "Barack Obama"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    gallery = tmp_path_factory.mktemp("web") / "gallery"
    app = create_app(gallery, ServiceSettings(rate_per_second=0, purge_interval_s=0), keep_images=True)
    service = app.state.service
    keys = {role: service.create_key(None, role, label=f"{role} (browser test)")[1]
            for role in ("operator", "admin", "auditor")}
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", keys
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def _login(browser, base: str, key: str, purpose: str = "building access, main entrance"):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(base + "/login")
    page.fill("#key", key)
    page.fill("#purpose", purpose)
    page.click("#login")
    page.wait_for_load_state()
    return page


def _enrol(page, base: str, name: str, files: list[str]) -> None:
    page.goto(base + "/enrol")
    page.fill("#enrol-name", name)
    page.set_input_files("#enrol-images", [str(FIXTURES / f) for f in files])
    page.fill("#consent-by", "J. Doe, reception")
    page.fill("#consent-ref", "signed form, binder 3")
    page.check("#consent-given")
    page.click("#enrol")
    page.wait_for_load_state()
    assert "Enrolled " + name in page.inner_text("#message")


def test_enrol_search_confirm_erase(server, browser, tmp_path) -> None:
    base, keys = server
    SHOTS = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    SHOTS.mkdir(parents=True, exist_ok=True)

    # An operator enrols two consenting people and searches with a third photo.
    page = _login(browser, base, keys["operator"])
    assert page.url.endswith("/search")
    _enrol(page, base, NAME, ["obama.jpg", "obama2.jpg"])
    _enrol(page, base, "Joe Biden", ["biden.jpg"])
    assert page.locator("#identities tbody tr").count() == 2
    assert page.locator(".erase-form").count() == 0  # operators cannot erase: no button
    page.goto(base + "/search")
    page.set_input_files("#search-image", [str(FIXTURES / "obama3.jpg"), str(FIXTURES / "obama_small.jpg")])
    page.click("#search")
    page.wait_for_load_state()
    assert page.locator(".probe img").count() == 2 and page.locator("#several-probes").count() == 1
    cards = page.locator(".candidate")
    assert cards.count() == 2
    assert cards.first.get_attribute("data-identity") == NAME
    assert page.locator(".candidate img").count() == 2  # thumbnails: the gallery keeps images
    page.screenshot(path=str(SHOTS / "web_search.png"), full_page=True)
    page.click("#confirm-1")
    page.wait_for_load_state()
    assert f"Confirmed {NAME}" in page.inner_text("#message")
    page.close()

    # An admin erases the person; a search with their photo no longer finds them.
    page = _login(browser, base, keys["admin"], purpose="data subject request #42")
    page.goto(base + "/enrol")
    page.screenshot(path=str(SHOTS / "web_enrol.png"), full_page=True)
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f'#identities tr[data-name="{NAME}"] button').click()
    page.wait_for_load_state()
    assert f"Erased {NAME}" in page.inner_text("#message")
    assert page.locator(f'#identities tr[data-name="{NAME}"]').count() == 0
    page.goto(base + "/search")
    page.set_input_files("#search-image", str(FIXTURES / "obama3.jpg"))
    page.click("#search")
    page.wait_for_load_state()
    assert [c.get_attribute("data-identity") for c in page.locator(".candidate").all()] == ["Joe Biden"]
    page.close()

    # An auditor sees the chain verify and every step, with pseudonyms only; and cannot enrol.
    page = _login(browser, base, keys["auditor"], purpose="quarterly audit")
    assert page.url.endswith("/audit")
    assert "Chain verifies" in page.inner_text("#audit-status")
    text = page.inner_text("#audit-records")
    for action in ("enrol", "search", "confirm", "erase"):
        assert action in text
    assert NAME not in page.content()
    page.screenshot(path=str(SHOTS / "web_audit.png"), full_page=True)
    assert page.locator("#nav-enrol").count() == 0
    response = page.goto(base + "/enrol")
    assert response is not None and response.status == 403
    page.close()


def test_login_with_a_bad_key_is_refused(server, browser) -> None:
    base, _ = server
    page = _login(browser, base, "pfk_wrong")
    assert page.url.endswith("/login")
    assert "unknown API key" in page.inner_text("#error")
    page.goto(base + "/search")
    assert page.url.split("?")[0].endswith("/login")  # no session: back to the login
    page.close()
