"""Playwright driving Debian's Chromium against pytest-django's live server.

Playwright's sync API runs an event loop in the test thread, so Django's async-safety
guard must be relaxed for ORM calls made by the test itself."""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OUTPUT = Path(
    os.environ.get("TEST_OUTPUT_DIR", Path(__file__).resolve().parents[2] / "test-output")
)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Only while the browser runs: a leaked variable would also reach other tests'
    # subprocesses (and `check --deploy` rightly refuses it).
    mp = pytest.MonkeyPatch()
    mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
    mp.undo()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page, request):
    """screenshot("name") saves a full-page PNG under test-output/screenshots/."""
    folder = OUTPUT / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{request.node.name}-{name}")
        path = folder / f"{safe}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def login(page, live_server, username: str, password: str = "pw-Secret-123") -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
