"""Issue 12, point 9: the newcomer's path. Docs that stand on their own, quiet logs, the
portal's own error pages in the demo, staff pointed to the admin."""

import logging
import re
from pathlib import Path

import pytest
from django.test import override_settings

from tests.portal.conftest import login

ROOT = Path(__file__).resolve().parents[2]


def test_staff_who_sign_in_to_the_portal_are_pointed_to_the_admin(client, acme, care):
    login(client, care)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    page = client.get("/balance/")
    assert page.status_code == 403
    assert 'href="/admin/"' in page.content.decode()


def test_a_user_without_a_role_is_not_sent_to_the_admin(client, acme, no_role_user):
    login(client, no_role_user)
    response = client.get("/")
    assert response.status_code == 403 and b"/admin/" not in response.content


@pytest.mark.parametrize("url", ["/no-such-page/", "/offices/no-such-office/"])
def test_the_demo_shows_the_portals_own_404(client, acme_admin, settings, url):
    # given: the demo's settings (DEBUG on, its middleware)
    from config.settings import local

    settings.MIDDLEWARE = local.MIDDLEWARE
    login(client, acme_admin)
    with override_settings(DEBUG=True):
        response = client.get(url)
    html = response.content.decode()
    assert response.status_code == 404
    assert "Not found" in html and "Unified Credit Pooling" in html
    assert "URLconf" not in html and "admin/" not in html  # not the technical page


def test_json_404_answers_pass_through_the_demos_middleware(rf):
    from django.http import JsonResponse

    from core.middleware import PortalNotFoundMiddleware

    answer = JsonResponse({"detail": "No such event."}, status=404)
    assert PortalNotFoundMiddleware(lambda request: answer)(rf.get("/api/v1/x")) is answer


def log_lines(caplog_text: str) -> list[str]:
    return [line for line in caplog_text.splitlines() if line.strip()]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "demo"])
@pytest.mark.parametrize(("url", "status"), [("/balance/", 403), ("/offices/nope/", 404)])
def test_ordinary_403_and_404_log_one_line_without_traceback(
    client, acme, no_role_user, acme_admin, url, status, capsys, settings, debug
):
    # given: the project's logging as Django sets it up (its defaults, then ours),
    # printing to the console
    from django.conf import settings as django_settings
    from django.utils.log import configure_logging

    configure_logging(django_settings.LOGGING_CONFIG, django_settings.LOGGING)
    settings.DEBUG = debug  # the demo: Django's own console handler is active too
    login(client, no_role_user if status == 403 else acme_admin)
    # when
    assert client.get(url).status_code == status
    # then: one line, printed once, no traceback
    err = capsys.readouterr().err
    lines = log_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and url in lines[0]


def test_a_server_error_keeps_its_traceback():
    from core.logging import NoClientErrorTraceback

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("django.request", logging.ERROR, "", 0, "x", (), sys.exc_info())
    record.status_code = 500
    assert NoClientErrorTraceback().filter(record) and record.exc_info is not None


def test_readme_and_docs_link_only_files_inside_the_repository():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path = (doc.parent / target).resolve()
            assert path.is_relative_to(ROOT), f"{doc.name} links outside: {target}"
            assert path.exists(), f"{doc.name} links a missing file: {target}"
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "docs/product.md" in readme


def test_product_rules_live_in_the_repository():
    product = (ROOT / "docs" / "product.md").read_text()
    for rule in ("allowance", "pool", "wallet", "AI agent", "uncovered", "Customer Care"):
        assert rule in product
