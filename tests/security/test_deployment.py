"""Deployment security: production settings pass Django's deploy checks, every page sends
a strict Content-Security-Policy and needs no inline script, log-ins are throttled, every
POST form needs its CSRF token, API keys are compared in constant time, and staff changes
in the admin land in an audit trail customer care can read."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.test import Client

from credits.models import EntryType, LedgerEntry, PoolingChange
from credits.services import credits_purchase
from offices.models import Plan
from offices.selectors import portal_scope_for
from tests.admin.conftest import form_data
from usage.models import Service

BASE_DIR = Path(__file__).resolve().parents[2]
PORTAL_ROLES = ("office_admin_a", "office_admin_b", "company_admin_x", "company_admin_y")


def production_env() -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),  # 86 characters, high entropy
        ALLOWED_HOSTS="credits.example.com",
        DATABASE_URL=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/credit_pooling"
        ),
    )
    env.pop("DEBUG", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests' fixture only
    return env


# Production settings ---------------------------------------------------------------------


def test_manage_check_deploy_passes_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_are_https_only_with_secure_cookies():
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ("
        "'DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', "
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', 'ALLOWED_HOSTS')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_SSL_REDIRECT"] and values["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["ALLOWED_HOSTS"] == ["credits.example.com"]


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


# Content-Security-Policy and inline script --------------------------------------------


def csp(response) -> dict[str, list[str]]:
    header = response.get("Content-Security-Policy", "")
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def assert_strict_csp(response, url):
    policy = csp(response)
    assert policy, f"{url}: no Content-Security-Policy header"
    assert policy.get("default-src") == ["'self'"], url
    script = policy.get("script-src", policy["default-src"])
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, url
    assert "'unsafe-inline'" not in policy.get("style-src", []), url
    assert policy.get("frame-ancestors") == ["'none'"], url


class ScriptFinder(HTMLParser):
    """Scripts a browser would run from the page itself: <script> without src (JSON data
    blocks are not run), inline event handlers and javascript: links."""

    def __init__(self):
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        data_block = (attrs.get("type") or "").lower() in (
            "application/json",
            "application/ld+json",
        )
        if tag == "script" and not attrs.get("src") and not data_block:
            self.inline.append(f"<script {attrs}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.inline.append(f"<{tag} {name}=javascript:...>")


def inline_scripts(html: str) -> list[str]:
    finder = ScriptFinder()
    finder.feed(html)
    return finder.inline


PORTAL_PAGES = ["/balance/", "/credits/add/", "/usage/", "/usage/?office=999999"]


def summary_data(world, role) -> dict:
    """The add-credits form filled in: 5 credits to the role's first office."""
    office = portal_scope_for(world.users[role]).offices().first()
    return {"amount": "5", "token": secrets.token_hex(16), "office": office.pk}


def portal_pages_of(world, role) -> list[str]:
    offices = {"office_admin_a": ["austin"], "office_admin_b": ["berlin"]}.get(role)
    if offices is None:
        company = world.acme if role == "company_admin_x" else world.globex
        offices = [o.slug for o in company.offices.all()]
    return [*PORTAL_PAGES, *[f"/offices/{slug}/" for slug in offices]]


@pytest.mark.parametrize("role", PORTAL_ROLES)
def test_every_portal_page_has_a_strict_csp_and_no_inline_script(world, role):
    client = world.client(role)
    pages = portal_pages_of(world, role)
    # the add-credits summary step is a page too
    pages_checked = 0
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict_csp(response, url)
        html = response.content.decode()
        assert inline_scripts(html) == [], url
        assert "<style" not in html and 'style="' not in html, url
        pages_checked += 1
    summary = client.post("/credits/add/", summary_data(world, role))
    assert summary.status_code == 200 and "confirm" in summary.content.decode()
    assert_strict_csp(summary, "add credits summary")
    assert inline_scripts(summary.content.decode()) == []
    assert pages_checked == len(pages)


def test_login_error_and_export_responses_have_the_policy_too(world):
    anonymous = world.client("anonymous")
    for response in (
        anonymous.get("/accounts/login/"),
        world.client("no_role").get("/balance/"),  # 403 page
        world.client("office_admin_a").get("/offices/paris/"),  # 404 page
    ):
        assert_strict_csp(response, response.request["PATH_INFO"])
        assert inline_scripts(response.content.decode()) == []


def test_the_admin_and_the_api_docs_have_a_strict_csp_and_no_inline_script(world, care):
    client = world.client("care")
    company = world.acme
    urls = [
        "/admin/",
        "/admin/login/?next=/admin/",
        f"/admin/offices/company/{company.pk}/change/",
        f"/admin/offices/company/{company.pk}/pooling/",
        f"/admin/offices/company/{company.pk}/credits/",
        "/admin/offices/company/add/",
        "/admin/usage/service/",
        "/admin/admin/logentry/",
        "/api/docs",
    ]
    for url in urls:
        response = (Client() if "login" in url else client).get(url)
        assert response.status_code == 200, url
        assert_strict_csp(response, url)
        # The docs page's settings are a JSON data block, which a browser does not run.
        assert inline_scripts(response.content.decode()) == [], url


# Login throttling (django-axes) ---------------------------------------------------------


def log_in(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_after_the_failure_limit_even_the_right_password_is_locked_out(world):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = log_in(client, "acme-admin", "wrong")
        assert response.status_code in (200, 429)
    response = log_in(client, "acme-admin", "pw-Secret-123")
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/balance/").status_code == 302
    # the admin's login is throttled the same way
    response = Client().post(
        "/admin/login/?next=/admin/", {"username": "acme-admin", "password": "pw-Secret-123"}
    )
    assert response.status_code == 429


def test_a_success_before_the_limit_resets_the_count(world):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit >= 2
    client = Client()
    for _ in range(limit - 1):
        log_in(client, "acme-admin", "wrong")
    assert log_in(client, "acme-admin", "pw-Secret-123").status_code == 302
    client.post("/accounts/logout/")
    # as many failures again would pass the limit had the success not reset the count
    for _ in range(limit - 1):
        log_in(client, "acme-admin", "wrong")
    response = log_in(client, "acme-admin", "pw-Secret-123")
    assert response.status_code == 302 and response["Location"] == "/"


# CSRF -----------------------------------------------------------------------------------


class FormFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attrs.get("method") or "get").lower(), "fields": {}})
            self.forms[-1]["action"] = attrs.get("action")
        elif tag in ("input", "select", "textarea", "button") and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or "1"


def post_forms(html: str, page: str) -> list[dict]:
    finder = FormFinder()
    finder.feed(html)
    forms = [f for f in finder.forms if f["method"] == "post"]
    for form in forms:
        form["action"] = form["action"] or page
    return forms


def ledger_state():
    return (
        LedgerEntry.objects.count(),
        PoolingChange.objects.count(),
        list(User.objects.order_by("pk").values_list("password", flat=True)),
        len(mail.outbox),
    )


CSRF_TRIED: list[str] = []


@pytest.mark.parametrize("role", PORTAL_ROLES)
def test_every_portal_post_form_refuses_a_post_without_its_token(world, role):
    # given every POST form on the role's pages (found in the HTML, so new forms count)
    browser = world.client(role)
    forms = {}
    pages = [*portal_pages_of(world, role), "/accounts/password_change/"]
    for url in pages:
        for form in post_forms(browser.get(url).content.decode(), url):
            assert "csrfmiddlewaretoken" in form["fields"], f"{url}: form without a token"
            forms[form["action"]] = form
    summary = browser.post("/credits/add/", summary_data(world, role))
    for form in post_forms(summary.content.decode(), "/credits/add/"):
        forms[form["action"] + " (confirm)"] = form | {"action": form["action"]}
    assert {"/accounts/logout/", "/credits/add/", "/accounts/password_change/"} <= {
        f["action"] for f in forms.values()
    }
    assert any("confirm" in f["fields"] for f in forms.values()), "the confirm step was found"
    # when each is posted, with all its fields but without the token
    forger = world.client(role, enforce_csrf_checks=True)
    forger.get("/balance/")  # a CSRF cookie is present; only the form token is missing
    before = ledger_state()
    for name, form in forms.items():
        data = {k: v for k, v in form["fields"].items() if k != "csrfmiddlewaretoken"}
        data.update({"new_password1": "Forged-Pass-881", "new_password2": "Forged-Pass-881"})
        CSRF_TRIED.append(f"{role} {name}")
        response = forger.post(form["action"], data)
        # then it is refused and nothing changed (still logged in, no credits, same password)
        assert response.status_code == 403, name
        assert ledger_state() == before, name
    assert forger.get("/balance/").status_code == 200


def test_the_login_form_refuses_a_post_without_the_token(world):
    client = Client(enforce_csrf_checks=True)
    for url, data in (
        ("/accounts/login/", {"username": "acme-admin", "password": "pw-Secret-123"}),
    ):
        html = client.get(url).content.decode()
        assert all("csrfmiddlewaretoken" in f["fields"] for f in post_forms(html, url))
        CSRF_TRIED.append(f"anonymous {url}")
        before = ledger_state()
        assert client.post(url, data).status_code == 403
        assert ledger_state() == before
    assert "_auth_user_id" not in client.session


def test_admin_pooling_and_add_credits_forms_refuse_a_post_without_the_token(world, care):
    company = world.acme
    client = world.client("care", enforce_csrf_checks=True)
    pooling = f"/admin/offices/company/{company.pk}/pooling/"
    credits = f"/admin/offices/company/{company.pk}/credits/"
    attempts = [
        (pooling, {"reason": "forged", "target": "on"}),
        (pooling, {"reason": "forged", "target": "on", "confirm": "Confirm"}),
        (
            credits,
            {
                "entry_type": "grant",
                "kind": "standard",
                "office": company.offices.get(slug="austin").pk,
                "amount": "500",
                "memo": "forged",
                "idempotency_key": "",
            },
        ),
    ]
    client.get(pooling)
    before = ledger_state()
    for url, data in attempts:
        CSRF_TRIED.append(f"care {url} {sorted(data)}")
        response = client.post(url, data)
        assert response.status_code == 403
        assert ledger_state() == before
    company.refresh_from_db()
    assert not company.pooling_enabled
    # with the token the same forms work: the refusals above are about the token alone
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(pooling, {**attempts[1][1], "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.pooling_enabled


@pytest.fixture(autouse=True, scope="module")
def report_csrf(request):
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if reporter is not None:  # absent in xdist workers
        with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
            reporter.write_line(f"\nCSRF forms tried: {len(CSRF_TRIED)}")


# API keys: constant-time comparison ----------------------------------------------------


def test_api_keys_are_compared_with_hmac_compare_digest(world, monkeypatch):
    import hmac

    import usage.api_auth as api_auth

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_auth.hmac, "compare_digest", spy)
    key = world.keys["key_x"]
    # a valid key: compared once, stored digest against the digest of what was sent
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/balance")
    assert response.status_code == 200
    assert len(calls) == 1 and calls[0][0] == calls[0][1]
    # the right prefix with a wrong secret: compared too, and refused
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    response = Client(HTTP_AUTHORIZATION=f"Bearer {forged}").get("/api/v1/balance")
    assert response.status_code == 401 and len(calls) == 2 and calls[1][0] != calls[1][1]
    # and the verdict is compare_digest's alone: if it says no, a valid key is refused
    monkeypatch.setattr(api_auth.hmac, "compare_digest", lambda a, b: False)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/balance").status_code == 401


# The admin audit trail -----------------------------------------------------------------


def log_for(obj) -> LogEntry:
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).latest("action_time")


def test_staff_edits_are_in_an_audit_trail_customer_care_can_read(world, care):
    client = world.client("care")
    austin = world.office("acme", "austin")
    plan = Plan.objects.first()
    sms = Service.objects.get(code="sms")
    # when care renames an office, changes a plan's credits and an SMS rate in the admin
    url = f"/admin/offices/office/{austin.pk}/change/"
    data = form_data(client.get(url)) | {"name": "Austin TX"}
    assert client.post(url, data).status_code == 302
    url = f"/admin/offices/plan/{plan.pk}/change/"
    data = form_data(client.get(url)) | {"included_standard": "150"}
    assert client.post(url, data).status_code == 302
    url = f"/admin/usage/service/{sms.pk}/change/"
    data = form_data(client.get(url)) | {"rate": "1.5"}
    assert client.post(url, data).status_code == 302
    # and turns pooling on, and adjusts a balance with a memo
    company = world.acme
    credits_purchase(company=company, amount="20", office=austin, actor=care)
    response = client.post(
        f"/admin/offices/company/{company.pk}/credits/",
        {
            "entry_type": EntryType.ADJUSTMENT,
            "kind": "standard",
            "office": austin.pk,
            "amount": "-3",
            "memo": "Refund of ticket 4417",
            "idempotency_key": "",
        },
    )
    assert response.status_code == 302
    response = client.post(
        f"/admin/offices/company/{company.pk}/pooling/",
        {"reason": "Customer asked, ticket 4418", "target": "on", "confirm": "Confirm"},
    )
    assert response.status_code == 302
    # then each change is a log entry naming who, what and when
    sms.refresh_from_db()
    assert sms.rate == Decimal("1.5")
    for obj, field in ((austin, "Name"), (plan, "Included standard"), (sms, "Rate")):
        entry = log_for(obj)
        assert entry.user == care and entry.action_flag == CHANGE and entry.action_time
        assert field.lower() in entry.get_change_message().lower(), entry.get_change_message()
    company_log = " ".join(
        e.get_change_message()
        for e in LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(company), object_id=str(company.pk)
        )
    )
    assert "Refund of ticket 4417" in company_log and "Customer asked, ticket 4418" in company_log
    # and customer care reads it all at /admin/admin/logentry/
    response = client.get("/admin/admin/logentry/")
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Austin TX", str(plan), str(sms), "Refund of ticket 4417", "ticket 4418"):
        assert text in page, text
    # while other staff and portal users cannot
    assert world.client("staff").get("/admin/admin/logentry/").status_code == 403
    assert world.client("company_admin_x").get("/admin/admin/logentry/").status_code == 302
    assert not re.search(r'name="(change_message|action_flag)"', page)  # read-only
