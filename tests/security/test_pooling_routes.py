"""Only holders of offices.change_pooling change pooling, whatever the route (SPEC §4, §5):
the admin toggle (both steps), the company change form, the changelist's bulk edit, every
admin action, the API and the portal's forms, and the service itself.

After every attempt the company's flag, its pooling history and its pooling transfers are
exactly as before."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from core.errors import PermissionDenied
from credits.models import EntryType, LedgerEntry, PoolingChange
from credits.services import POOLING_PERMISSION, credits_purchase, pooling_set
from offices.models import Company
from tests.admin.conftest import form_data
from tests.security.conftest import staff_user

ATTEMPTS: list[str] = []  # every route tried, for the count in the report


@pytest.fixture(autouse=True, scope="module")
def report_attempts(request):
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    if reporter is not None:  # absent in xdist workers
        with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
            reporter.write_line(f"\npooling routes tried: {len(ATTEMPTS)}")


def state(company: Company) -> tuple:
    company.refresh_from_db()
    return (
        company.pooling_enabled,
        company.pooling_changed_at,
        PoolingChange.objects.filter(company=company).count(),
        LedgerEntry.objects.filter(company=company, entry_type=EntryType.POOLING_TRANSFER).count(),
    )


@pytest.fixture
def clerk(db):
    """Staff who may view and edit companies (name, slug, timezone) but not pooling."""
    return staff_user("clerk", "offices.view_company", "offices.change_company")


@pytest.fixture(params=["off", "on"])
def acme(request, world, care):
    """Acme with money in a wallet, pooling off or (turned on by care) on."""
    company = world.acme
    credits_purchase(
        company=company, amount="25", office=company.offices.get(slug="austin"), actor=care
    )
    if request.param == "on":
        pooling_set(company=company, enabled=True, actor=care, reason="setup")
    company.refresh_from_db()
    return company


def pooling_url(company):
    return f"/admin/offices/company/{company.pk}/pooling/"


def change_url(company):
    return f"/admin/offices/company/{company.pk}/change/"


# The admin toggle ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", ["anonymous", "no_role", "office_admin_a", "company_admin_x", "clerk", "key_x"]
)
def test_the_toggle_refuses_every_step_to_anyone_without_the_permission(world, acme, clerk, role):
    world.users["clerk"] = clerk
    client = world.client(role)
    target = "off" if acme.pooling_enabled else "on"
    before = state(acme)
    steps = [
        ("get", {}),
        ("post", {"reason": "forged", "target": target}),
        ("post", {"reason": "forged", "target": target, "confirm": "Confirm"}),
    ]
    for method, data in steps:
        ATTEMPTS.append(f"{role} {method} pooling {data}")
        response = getattr(client, method)(pooling_url(acme), data)
        if role == "clerk":
            assert response.status_code == 403
        else:
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
        assert state(acme) == before


def test_the_toggle_works_for_customer_care(world, acme, care):
    # The refusals above mean something only if the same requests work with the right.
    client = world.client("care")
    target = "off" if acme.pooling_enabled else "on"
    before = state(acme)
    response = client.post(
        pooling_url(acme), {"reason": "ticket 1", "target": target, "confirm": "Confirm"}
    )
    assert response.status_code == 302
    after = state(acme)
    assert after[0] is not before[0] and after[2] == before[2] + 1


# The company change form and the changelist -------------------------------------------


@pytest.mark.parametrize("role", ["clerk", "care"])
def test_a_forged_pooling_field_on_the_company_form_is_ignored(world, acme, clerk, role):
    world.users["clerk"] = clerk
    client = world.client(role)
    response = client.get(change_url(acme))
    assert response.status_code == 200
    assert 'name="pooling_enabled"' not in response.content.decode()
    data = form_data(response)
    flipped = "" if acme.pooling_enabled else "on"
    data.update({"name": "Acme Co", "pooling_enabled": flipped, "pooling_changed_at": "2020-01-01"})
    before = state(acme)
    ATTEMPTS.append(f"{role} company change form")
    response = client.post(change_url(acme), data)
    assert response.status_code == 302  # saved...
    assert acme.__class__.objects.get(pk=acme.pk).name == "Acme Co"
    assert state(acme) == before  # ...without the flag


@pytest.mark.parametrize("role", ["clerk", "care"])
def test_the_changelist_bulk_edit_cannot_set_pooling(world, acme, clerk, role):
    world.users["clerk"] = clerk
    client = world.client(role)
    assert not admin.site._registry[Company].list_editable
    flipped = "" if acme.pooling_enabled else "on"
    before = state(acme)
    ATTEMPTS.append(f"{role} changelist bulk edit")
    response = client.post(
        "/admin/offices/company/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-id": str(acme.pk),
            "form-0-pooling_enabled": flipped,
            "_save": "Save",
        },
    )
    assert response.status_code in (200, 302)
    assert state(acme) == before


def test_no_admin_list_edits_the_pooling_flag():
    for model_admin in admin.site._registry.values():
        assert "pooling_enabled" not in (model_admin.list_editable or ())
        assert "pooling_enabled" not in (model_admin.list_display_links or ())


# Admin actions ---------------------------------------------------------------------------


def admin_request(user, method="post"):
    request = getattr(RequestFactory(), method)("/admin/")
    request.user = user
    request.session = {}
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    return request


@pytest.mark.parametrize("role", ["clerk", "care"])
def test_no_admin_action_of_any_model_changes_pooling(world, acme, clerk, role):
    # given every action any admin list offers this user, posted on all of its rows
    world.users["clerk"] = clerk
    client = world.client(role)
    user = world.users[role]
    before = state(acme)
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        pks = [str(pk) for pk in model.objects.values_list("pk", flat=True)]
        for name in model_admin.get_actions(admin_request(user, "get")):
            if name == "delete_selected":
                continue  # deleting is no toggle (and nothing holding money is deletable)
            ATTEMPTS.append(f"{role} action {opts.label}.{name}")
            response = client.post(url, {"action": name, "_selected_action": pks, "index": "0"})
            assert response.status_code in (200, 302, 403)
            assert state(acme) == before
    # and forged action names posted to the company list do nothing
    for forged in ("pooling_on", "pooling_enable", "toggle_pooling", "enable_pooling"):
        ATTEMPTS.append(f"{role} forged action {forged}")
        response = client.post(
            "/admin/offices/company/",
            {"action": forged, "_selected_action": [str(acme.pk)], "index": "0"},
        )
        assert response.status_code in (200, 302)
        assert state(acme) == before


def test_company_admin_offers_no_action_that_touches_pooling(world, care, clerk):
    model_admin = admin.site._registry[Company]
    for user in (care, clerk):
        # A new action here must be reviewed: it may not change pooling (this fails first).
        assert set(model_admin.get_actions(admin_request(user, "get"))) == set()


# The API ---------------------------------------------------------------------------------


WRITES = ["post", "put", "patch", "delete"]
API_PATHS = [
    "/api/v1/balance",
    "/api/v1/usage-events",
    "/api/v1/pooling",
    "/api/v1/companies/acme",
    "/api/v1/companies/acme/pooling",
    "/api/v1/balance/pooling",
]


def test_no_api_route_changes_pooling(world, acme):
    client = world.client("key_x")
    before = state(acme)
    body = json.dumps({"pooling_enabled": not acme.pooling_enabled, "enabled": True})
    for path in API_PATHS:
        for method in WRITES:
            if (path, method) == ("/api/v1/usage-events", "post"):
                continue  # the one write: tried below with a forged field
            ATTEMPTS.append(f"api {method} {path}")
            response = getattr(client, method)(path, body, content_type="application/json")
            assert response.status_code in (404, 405), (method, path, response.status_code)
            assert state(acme) == before
    # a usage batch with a forged pooling field is refused as a whole
    ATTEMPTS.append("api post usage-events with pooling_enabled")
    response = client.post(
        "/api/v1/usage-events",
        json.dumps({"events": [], "pooling_enabled": not acme.pooling_enabled}),
        content_type="application/json",
    )
    assert response.status_code == 422
    assert state(acme) == before


def test_the_schema_has_no_operation_that_writes_pooling(world):
    schema = world.client("anonymous").get("/api/openapi.json").json()
    writes = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in WRITES
    ]
    assert writes == [("/api/v1/usage-events", "post")]
    # and nothing any write accepts (followed through every $ref) mentions pooling
    fields = input_fields(schema, [schema["paths"][p][m] for p, m in writes])
    assert "events" in fields and "office" in fields  # the walk does reach the batch
    assert not [f for f in fields if "pool" in f.lower()]


def input_fields(schema: dict, operations: list[dict]) -> set[str]:
    components = schema.get("components", {}).get("schemas", {})
    names: set[str] = set()
    seen: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref and ref not in seen:
                seen.add(ref)
                walk(components[ref.rsplit("/", 1)[-1]])
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operation in operations:
        walk(operation.get("requestBody", {}))
        walk(operation.get("parameters", []))
    return names


# The portal ------------------------------------------------------------------------------


PORTAL_PAGES = ["/", "/balance/", "/credits/add/", "/offices/hq/", "/usage/", "/usage/export.csv"]


@pytest.mark.parametrize("role", ["company_admin_x", "office_admin_a"])
def test_no_portal_form_changes_pooling(world, acme, role):
    client = world.client(role)
    before = state(acme)
    for url in PORTAL_PAGES:
        response = client.get(url, follow=True)
        if not response.streaming:
            assert b'name="pooling' not in response.content
        ATTEMPTS.append(f"{role} portal post {url}")
        response = client.post(
            url,
            {
                "pooling_enabled": "off" if acme.pooling_enabled else "on",
                "enabled": "on",
                "target": "on",
                "reason": "forged",
                "confirm": "1",
            },
        )
        assert response.status_code in (200, 403, 404, 405)
        assert state(acme) == before
    assert b"Pooling" in client.get("/balance/").content  # the status is shown, read-only


# The service ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", ["anonymous", "no_role", "office_admin_a", "company_admin_x", "clerk", "none"]
)
def test_the_service_refuses_actors_without_the_permission(world, acme, clerk, role):
    actor = {"anonymous": AnonymousUser(), "clerk": clerk, "none": None}.get(role)
    actor = actor if role in ("anonymous", "clerk", "none") else world.users[role]
    assert actor is None or not actor.has_perm(POOLING_PERMISSION)
    before = state(acme)
    ATTEMPTS.append(f"service pooling_set by {role}")
    with pytest.raises(PermissionDenied):
        pooling_set(company=acme, enabled=not acme.pooling_enabled, actor=actor, reason="forged")
    assert state(acme) == before
