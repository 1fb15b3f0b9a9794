"""The authorization matrix: every URL pattern of the site (portal, API, accounts and the
admin) × every role, with the status each role must get (SPEC §5).

The list of patterns comes from the URL resolver, so a new page or endpoint makes
`test_every_url_pattern_is_in_the_matrix` fail until someone decides who may open it.
Pages answering 200 are also searched for the marks of usage, offices and companies the
role may not see: another scope's object answers 404 or a form error, never its data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
from credits.models import (
    Account,
    Alert,
    Allowance,
    CompanyControls,
    ControlChange,
    LedgerEntry,
    PoolCap,
    PoolingChange,
    WebhookAttempt,
)
from credits.notifications import alert_notify
from credits.periods import period_of
from credits.requests.services import credit_request_create
from credits.services import credits_purchase, pooling_set
from offices.models import AddOn, Company, Membership, Office, Plan, TeamChange
from offices.services import membership_grant
from offices.team.services import invite_create, invite_revoke
from offices.team.tokens import invite_token
from tests.factories import AddOnFactory
from tests.security.conftest import KEY_ROLES, MARKS, ROLES, SESSION_ROLES
from usage.models import ApiKey, Service, UsageRecord

LOGIN = "login"  # 302 to the portal's login page, `next` pointing back
ADMIN_LOGIN = "admin-login"  # 302 to the admin's login page
NON_STAFF = ("anonymous", "no_role", *SESSION_ROLES[2:6], *KEY_ROLES)


def all_patterns(resolver=None, prefix=""):
    """(route, name) of every URL pattern, nested resolvers walked."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from all_patterns(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name


@dataclass
class Case:
    route: str
    name: str | None
    url: str  # may hold {placeholders} filled from the world (see `ids`)
    expect: dict
    method: str = "get"
    data: dict | None = None
    content_type: str | None = None
    note: str = ""
    allowed: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.url}{' ' + self.note if self.note else ''}"


def portal(**overrides) -> dict:
    """A portal page: anonymous (and a bare API key) → log in; no portal role → 403;
    the four portal admins → 200 unless overridden."""
    expect = {role: LOGIN for role in ("anonymous", *KEY_ROLES)}
    expect |= {role: 403 for role in ("no_role", "staff", "care")}
    expect |= {role: 200 for role in SESSION_ROLES[2:6]}
    return expect | overrides


def api(**overrides) -> dict:
    """An API endpoint: a session (any role) is no credential → 401; a key → 200."""
    return {role: 401 for role in SESSION_ROLES} | {role: 200 for role in KEY_ROLES} | overrides


def everyone(status) -> dict:
    return dict.fromkeys(ROLES, status)


def admin_page(care, staff, non_staff=ADMIN_LOGIN) -> dict:
    return dict.fromkeys(NON_STAFF, non_staff) | {"care": care, "staff": staff}


# Portal scope: which marks (usage labels, office and company names) each role may see.
VISIBLE = {
    "office_admin_a": {("acme", "austin")},
    "office_admin_b": {("acme", "berlin")},
    "company_admin_x": {("acme", "hq"), ("acme", "austin"), ("acme", "berlin")},
    "company_admin_y": {("globex", "hq"), ("globex", "paris")},
    "key_x": {("acme", "hq"), ("acme", "austin"), ("acme", "berlin")},
    "key_y": {("globex", "hq"), ("globex", "paris")},
}
NAMES = {("acme", "austin"): "Austin", ("acme", "berlin"): "Berlin", ("globex", "paris"): "Paris"}


def forbidden_text(role: str) -> list[str]:
    seen = VISIBLE.get(role)
    if seen is None:
        return []
    out = [MARKS[key] for key in MARKS if key not in seen]
    out += [name for key, name in NAMES.items() if key not in seen]
    companies = {company for company, _ in seen}
    out += [
        name for slug, name in (("acme", "Acme"), ("globex", "Globex")) if slug not in companies
    ]
    return out


# Portal, accounts and API -----------------------------------------------------------

OFFICE = "offices/<slug:slug>/"
OFFICE_PAGES = [
    Case(OFFICE, "office", "/offices/hq/", portal(office_admin_a=404, office_admin_b=404)),
    Case(OFFICE, "office", "/offices/austin/", portal(office_admin_b=404, company_admin_y=404)),
    Case(OFFICE, "office", "/offices/berlin/", portal(office_admin_a=404, company_admin_y=404)),
    Case(
        OFFICE,
        "office",
        "/offices/paris/",
        portal(office_admin_a=404, office_admin_b=404, company_admin_x=404),
    ),
    Case(
        OFFICE,
        "office",
        "/offices/no-such-office/",
        portal(**dict.fromkeys(SESSION_ROLES[2:6], 404)),
    ),
]

PORTAL = [
    Case(
        "",
        "home",
        "/",
        portal(
            office_admin_a="→/offices/austin/",
            office_admin_b="→/offices/berlin/",
            company_admin_x="→/balance/",
            company_admin_y="→/balance/",
            staff="→/admin/",
            care="→/admin/",
        ),
    ),
    Case("balance/", "balance", "/balance/", portal()),
    Case("balance/activity/", "activity", "/balance/activity/", portal()),
    # Another office's wallet (or another tenant's) is a form error, never its entries.
    Case(
        "balance/activity/",
        "activity",
        "/balance/activity/?account={paris_wallet}",
        portal(),
        note="foreign balance",
    ),
    Case("balance/activity.csv", "activity_export", "/balance/activity.csv", portal()),
    Case(
        "balance/activity.csv",
        "activity_export",
        "/balance/activity.csv?account={austin_wallet}",
        portal(office_admin_b=400, company_admin_y=400),
        note="wallet A",
    ),
    # Money controls: every portal admin sees them (office admins read-only; their POST
    # is refused, see tests/credits/test_controls_pages.py).
    Case("balance/controls/", "controls", "/balance/controls/", portal()),
    Case("credits/add/", "add_credits", "/credits/add/", portal()),
    *OFFICE_PAGES,
    Case("usage/", "history", "/usage/", portal()),
    # A foreign office in the filter is a form error on the page, never its rows.
    Case("usage/", "history", "/usage/?office=paris", portal(), note="foreign office"),
    Case("usage/", "history", "/usage/?office=austin", portal(), note="office A"),
    # A link made before slugs: the office's id, sent on to its slug if the user sees it.
    Case(
        "usage/",
        "history",
        "/usage/?office={austin}",
        portal(office_admin_a="→/usage/?office=austin", company_admin_x="→/usage/?office=austin"),
        note="office A by id",
    ),
    Case("usage/export.csv", "export", "/usage/export.csv", portal()),
    Case(
        "usage/export.csv",
        "export",
        "/usage/export.csv?office={paris}",
        portal(office_admin_a=400, office_admin_b=400, company_admin_x=400),
        note="foreign office",
    ),
    Case(
        "usage/export.csv",
        "export",
        "/usage/export.csv?office={austin}",
        portal(office_admin_b=400, company_admin_y=400),
        note="office A",
    ),
]

STATEMENT = "statements/<str:period>/"
STATEMENTS = [
    # The picker redirects to the chosen period's statement.
    Case(
        "statements/",
        "statement_pick",
        "/statements/?period={period}",
        portal(**dict.fromkeys(SESSION_ROLES[2:6], "→/statements/{period}/")),
    ),
    Case(
        "statements/",
        "statement_pick",
        "/statements/?period=2026-13",
        portal(**dict.fromkeys(SESSION_ROLES[2:6], 400)),
        note="malformed",
    ),
    # Statements: the list of months every portal admin may open.
    Case("statements/months/", "statement_list", "/statements/months/", portal()),
    Case(STATEMENT, "statement", "/statements/{period}/", portal()),
    Case(
        STATEMENT,
        "statement",
        "/statements/abc/",
        portal(**dict.fromkeys(SESSION_ROLES[2:6], 400)),
        note="malformed",
    ),
    Case(
        STATEMENT,
        "statement",
        "/statements/1999-01/",
        portal(**dict.fromkeys(SESSION_ROLES[2:6], 404)),
        note="before the company",
    ),
    # Another company's office, or an office an office admin does not run: 404.
    Case(
        STATEMENT,
        "statement",
        "/statements/{period}/?office=paris",
        portal(office_admin_a=404, office_admin_b=404, company_admin_x=404),
        note="office paris",
    ),
    Case(
        STATEMENT,
        "statement",
        "/statements/{period}/?office=austin",
        portal(office_admin_b=404, company_admin_y=404),
        note="office austin",
    ),
    Case(
        STATEMENT + "statement.csv", "statement_csv", "/statements/{period}/statement.csv", portal()
    ),
    Case(
        STATEMENT + "statement.pdf", "statement_pdf", "/statements/{period}/statement.pdf", portal()
    ),
    # The what-if shows every office: company admins only.
    Case(
        "what-if/<str:period>/",
        "whatif",
        "/what-if/{period}/",
        portal(office_admin_a=403, office_admin_b=403),
    ),
    Case(
        "what-if/<str:period>/",
        "whatif",
        "/what-if/2026-13/",
        portal(office_admin_a=403, office_admin_b=403, company_admin_x=400, company_admin_y=400),
        note="malformed",
    ),
]

# Team (company admins only: 403 for office admins) and credit requests (SPEC §11).
COMPANY_ADMINS_ONLY = {"office_admin_a": 403, "office_admin_b": 403}
POST_PORTAL = portal(**dict.fromkeys(SESSION_ROLES[2:6], 405))  # POST-only: GET refused
TEAM = [
    Case("team/", "team", "/team/", portal(**COMPANY_ADMINS_ONLY)),
    Case("team/invite/", "team_invite", "/team/invite/", portal(**COMPANY_ADMINS_ONLY)),
    Case(
        "team/invites/<int:pk>/resend/",
        "team_invite_resend",
        "/team/invites/{invite}/resend/",
        POST_PORTAL | COMPANY_ADMINS_ONLY,
        note="GET",
    ),
    Case(
        "team/invites/<int:pk>/resend/",
        "team_invite_resend",
        "/team/invites/{invite}/resend/",
        portal(**COMPANY_ADMINS_ONLY, company_admin_x="→/team/", company_admin_y=404),
        method="post",
    ),
    Case(
        "team/invites/<int:pk>/revoke/",
        "team_invite_revoke",
        "/team/invites/{invite}/revoke/",
        portal(**COMPANY_ADMINS_ONLY, company_admin_y=404),
    ),
    Case(
        "team/people/<int:user_id>/",
        "team_member",
        "/team/people/{user:office_admin_a}/",
        portal(**COMPANY_ADMINS_ONLY, company_admin_y=404),
    ),
    Case(
        "team/people/<int:user_id>/remove/",
        "team_member_remove",
        "/team/people/{user:office_admin_a}/remove/",
        portal(**COMPANY_ADMINS_ONLY, company_admin_y=404),
    ),
    Case(
        "team/people/<int:user_id>/remove/",
        "team_member_remove",
        "/team/people/{user:company_admin_y}/remove/",
        portal(**COMPANY_ADMINS_ONLY, company_admin_x=404, company_admin_y=422),
        method="post",
        note="globex's last admin",
    ),
]
REQUEST = "credits/requests/<int:pk>/"
CREDIT_REQUESTS = [
    Case("credits/requests/", "credit_requests", "/credits/requests/", portal()),
    Case(
        "credits/requests/new/",
        "credit_request_new",
        "/credits/requests/new/",
        portal(company_admin_x=403, company_admin_y=403),
    ),
    Case(
        REQUEST,
        "credit_request",
        "/credits/requests/{request_berlin}/",
        portal(office_admin_a=404, company_admin_y=404),
    ),
    Case(
        REQUEST,
        "credit_request",
        "/credits/requests/{request_paris}/",
        portal(office_admin_a=404, office_admin_b=404, company_admin_x=404),
        note="globex",
    ),
    Case(
        REQUEST + "decide/",
        "credit_request_decide",
        "/credits/requests/{request_berlin}/decide/",
        POST_PORTAL,
        note="GET",
    ),
    # A POST without a decision: the own company's request is a 400, another's a 404.
    Case(
        REQUEST + "decide/",
        "credit_request_decide",
        "/credits/requests/{request_berlin}/decide/",
        portal(office_admin_a=403, office_admin_b=403, company_admin_x=400, company_admin_y=404),
        method="post",
    ),
]

ACCOUNTS = [
    Case("accounts/login/", "login", "/accounts/login/", everyone(200)),
    Case("accounts/password_reset/", "password_reset", "/accounts/password_reset/", everyone(200)),
    Case(
        "accounts/password_reset/done/",
        "password_reset_done",
        "/accounts/password_reset/done/",
        everyone(200),
    ),
    # A wrong token is the page saying the link cannot be used (Django's own view).
    Case(
        "accounts/reset/<uidb64>/<token>/",
        "password_reset_confirm",
        "/accounts/reset/MQ/set-password/",
        everyone(200),
    ),
    Case("accounts/reset/done/", "password_reset_complete", "/accounts/reset/done/", everyone(200)),
    Case(
        "accounts/invite/<str:token>/",
        "invite_accept",
        "/accounts/invite/not-a-token/",
        everyone(400),
        note="tampered",
    ),
    Case(
        "accounts/invite/<str:token>/",
        "invite_accept",
        "/accounts/invite/{revoked_invite_link}/",
        everyone(410),
        note="revoked",
    ),
    Case("accounts/logout/", "logout", "/accounts/logout/", everyone(405), note="GET refused"),
    Case(
        "accounts/password_change/",
        "password_change",
        "/accounts/password_change/",
        everyone(200) | {role: LOGIN for role in ("anonymous", *KEY_ROLES)},
    ),
    Case(
        "accounts/password_change/done/",
        "password_change_done",
        "/accounts/password_change/done/",
        everyone(200) | {role: LOGIN for role in ("anonymous", *KEY_ROLES)},
    ),
]

EVENTS = "api/v1/usage-events"
SPENDABLE = "api/v1/offices/<slug>/spendable"
API = [
    Case("api/", "api-root", "/api/", everyone(404)),
    Case("api/openapi.json", "openapi-json", "/api/openapi.json", everyone(200)),
    Case("api/docs", "openapi-view", "/api/docs", everyone(200)),
    Case(EVENTS, "usage_events_list", "/api/v1/usage-events", api()),
    Case(EVENTS, "usage_events_list", "/api/v1/usage-events?office=paris", api(key_x=422)),
    Case(EVENTS, "usage_events_list", "/api/v1/usage-events?office=austin", api(key_y=422)),
    Case(
        EVENTS,
        "usage_events_create",
        "/api/v1/usage-events",
        api(key_x=422, key_y=422),
        method="post",
        data={"events": []},
        content_type="application/json",
        note="empty batch",
    ),
    Case("api/v1/balance", "balance", "/api/v1/balance", api()),
    Case("api/v1/statements/<period>", "statement", "/api/v1/statements/{period}", api()),
    Case(
        "api/v1/statements/<period>",
        "statement",
        "/api/v1/statements/{period}?office=paris",
        api(key_x=404),
        note="office paris",
    ),
    Case(
        "api/v1/statements/<period>",
        "statement",
        "/api/v1/statements/2026-13",
        api(key_x=422, key_y=422),
        note="malformed",
    ),
    Case("api/v1/what-if/<period>", "what_if", "/api/v1/what-if/{period}", api()),
    Case("api/v1/alerts", "alerts", "/api/v1/alerts", api()),
    Case("api/v1/alerts", "alerts", "/api/v1/alerts?state=open&limit=5", api(), note="open"),
    Case(
        "api/v1/alerts",
        "alerts",
        "/api/v1/alerts?state=bogus",
        api(key_x=422, key_y=422),
        note="bad state",
    ),
    Case(SPENDABLE, "spendable", "/api/v1/offices/hq/spendable?credit_kind=standard", api()),
    Case(
        SPENDABLE,
        "spendable",
        "/api/v1/offices/paris/spendable?credit_kind=ai_agent",
        api(key_x=404),
        note="office paris",
    ),
    Case(
        SPENDABLE,
        "spendable",
        "/api/v1/offices/austin/spendable?credit_kind=standard",
        api(key_y=404),
        note="office austin",
    ),
    Case(
        SPENDABLE,
        "spendable",
        "/api/v1/offices/hq/spendable?credit_kind=gold",
        api(key_x=422, key_y=422),
        note="bad credit kind",
    ),
]


# The admin --------------------------------------------------------------------------

# Per registered model, what customer care and "other staff" (STAFF_PERMISSIONS) get on
# changelist, add, change, history and delete. Read-only history models refuse add and
# delete even with the permission; nothing that holds money or history is deletable.
ADMIN_MODELS = {
    "auth.group": ((403,) * 5, (403,) * 5),
    "auth.user": ((200, 200, 200, 200, 403), (403,) * 5),
    # Customer care clears login lockouts: it views and deletes attempts, nothing more.
    "axes.accessattempt": ((200, 403, 200, 200, 200), (403,) * 5),
    "axes.accesslog": ((403,) * 5, (403,) * 5),
    "axes.accessfailurelog": ((403,) * 5, (403,) * 5),
    "credits.account": ((200, 403, 200, 200, 403), (200, 403, 200, 200, 403)),
    "credits.ledgerentry": ((200, 403, 200, 200, 403), (200, 403, 200, 200, 403)),
    "credits.allowance": ((200, 403, 200, 200, 403), (403,) * 5),
    "credits.poolingchange": ((200, 403, 200, 200, 403), (403,) * 5),
    # Money controls: care sets rules, caps and the company's controls (through the
    # services); alerts, webhook attempts and the change audit are read-only.
    "credits.rechargerule": ((200,) * 5, (403,) * 5),
    "credits.poolcap": ((200,) * 5, (403,) * 5),
    "credits.companycontrols": ((200, 200, 200, 200, 403), (403,) * 5),
    "credits.alert": ((200, 403, 200, 200, 403), (403,) * 5),
    "credits.webhookattempt": ((200, 403, 200, 200, 403), (403,) * 5),
    "credits.controlchange": ((200, 403, 200, 200, 403), (403,) * 5),
    # Team and credit requests (SPEC §11): read-only audit for care.
    "credits.creditrequest": ((200, 403, 200, 200, 403), (403,) * 5),
    "offices.invite": ((200, 403, 200, 200, 403), (403,) * 5),
    "offices.teamchange": ((200, 403, 200, 200, 403), (403,) * 5),
    # The task queue's results: superusers only.
    "django_tasks_database.dbtaskresult": ((403,) * 5, (403,) * 5),
    "offices.company": ((200, 200, 200, 200, 403), (200, 403, 200, 200, 403)),
    "offices.office": ((200, 200, 200, 200, 403), (200, 403, 200, 200, 403)),
    "offices.plan": ((200, 200, 200, 200, 403), (403,) * 5),
    "offices.addon": ((200, 200, 200, 200, 403), (403,) * 5),
    "offices.membership": ((200, 200, 200, 200, 200), (403,) * 5),
    "admin.logentry": ((200, 403, 200, 200, 403), (403,) * 5),
    "usage.service": ((200, 200, 200, 200, 403), (403,) * 5),
    "usage.usagerecord": ((200, 403, 200, 200, 403), (403,) * 5),
    "usage.apikey": ((200, 200, 200, 200, 403), (403,) * 5),
}
VIEWS = ("changelist", "add", "change", "history", "delete")
SUFFIX = {
    "changelist": "",
    "add": "add/",
    "change": "<path:object_id>/change/",
    "history": "<path:object_id>/history/",
    "delete": "<path:object_id>/delete/",
}


def model_cases() -> list[Case]:
    cases = []
    for label, (care, staff) in ADMIN_MODELS.items():
        app, model = label.split(".")
        base = f"admin/{app}/{model}/"
        for view, care_status, staff_status in zip(VIEWS, care, staff, strict=True):
            url = "/" + base + SUFFIX[view].replace("<path:object_id>", "{obj:" + label + "}")
            cases.append(
                Case(
                    base + SUFFIX[view],
                    f"{app}_{model}_{view}",
                    url,
                    admin_page(care_status, staff_status),
                )
            )
        # The bare object URL only redirects to its change page (which checks rights).
        change = "→/admin/" + f"{app}/{model}/" + "{obj:" + label + "}/change/"
        cases.append(
            Case(
                base + "<path:object_id>/",
                None,
                "/" + base + "{obj:" + label + "}/",
                admin_page(change, change),
            )
        )
    return cases


APP_LIST = "admin/^(?P<app_label>auth|axes|django_tasks_database|offices|admin|credits|usage)/$"
ADMIN = [
    Case("admin/", "index", "/admin/", admin_page(200, 200)),
    Case("admin/login/", "login", "/admin/login/", admin_page("→/admin/", "→/admin/", 200)),
    Case("admin/logout/", "logout", "/admin/logout/", admin_page(405, 405, "→/admin/")),
    Case(
        "admin/password_change/", "password_change", "/admin/password_change/", admin_page(200, 200)
    ),
    Case(
        "admin/password_change/done/",
        "password_change_done",
        "/admin/password_change/done/",
        admin_page(200, 200),
    ),
    Case("admin/autocomplete/", "autocomplete", "/admin/autocomplete/", admin_page(403, 403)),
    Case(
        "admin/autocomplete/",
        "autocomplete",
        "/admin/autocomplete/?app_label=offices&model_name=membership&field_name=user",
        admin_page(200, 403),
        note="users of a membership",
    ),
    Case("admin/jsi18n/", "jsi18n", "/admin/jsi18n/", admin_page(200, 200)),
    Case(
        "admin/r/<path:content_type_id>/<path:object_id>/",
        "view_on_site",
        "/admin/r/{ct:offices.company}/{obj:offices.company}/",
        admin_page(404, 404),
    ),
    *[
        Case(APP_LIST, "app_list", f"/admin/{app}/", admin_page(care, staff))
        for app, care, staff in (
            ("auth", 200, 404),
            ("axes", 200, 404),
            ("credits", 200, 200),
            ("offices", 200, 200),
            ("admin", 200, 404),
            ("usage", 200, 404),
            ("django_tasks_database", 404, 404),
        )
    ],
    Case("admin/(?P<url>.*)$", None, "/admin/no-such-page/", admin_page(404, 404)),
    # The pooling toggle and Add credits: only holders of the permission, for any company.
    *[
        Case(
            f"admin/offices/company/<path:object_id>/{tool}/",
            f"offices_company_{name}",
            "/admin/offices/company/{" + company + "}/" + tool + "/",
            admin_page(200, 403),
            note=company,
        )
        for tool, name in (("pooling", "pooling"), ("credits", "credits"))
        for company in ("acme", "globex")
    ],
    *[
        Case(
            f"admin/offices/company/<path:object_id>/{tool}/",
            f"offices_company_{tool}",
            f"/admin/offices/company/999999/{tool}/",
            admin_page(404, 404),
            note="unknown company",
        )
        for tool in ("pooling", "credits")
    ],
    # A balance's low-balance threshold override: care (who may change the company's
    # low-balance settings), not staff who may only view balances.
    Case(
        "admin/credits/account/<path:object_id>/threshold/",
        "credits_account_threshold",
        "/admin/credits/account/{obj:credits.account}/threshold/",
        admin_page(200, 403),
    ),
    Case(
        "admin/credits/account/<path:object_id>/threshold/",
        "credits_account_threshold",
        "/admin/credits/account/999999/threshold/",
        admin_page(404, 404),
        note="unknown balance",
    ),
    # Setting a password: customer care helps portal users, but never takes over a
    # superuser's account (which would give them every right).
    Case(
        "admin/auth/user/<id>/password/",
        "auth_user_password_change",
        "/admin/auth/user/{user:no_role}/password/",
        admin_page(200, 403),
        note="portal user",
    ),
    Case(
        "admin/auth/user/<id>/password/",
        "auth_user_password_change",
        "/admin/auth/user/{user:root}/password/",
        admin_page(403, 403),
        note="superuser",
    ),
    Case(
        "admin/auth/user/<path:object_id>/change/",
        "auth_user_change",
        "/admin/auth/user/{user:root}/change/",
        admin_page(200, 403),
        note="superuser: view only",
    ),
    *model_cases(),
]

CASES = [*PORTAL, *STATEMENTS, *TEAM, *CREDIT_REQUESTS, *ACCOUNTS, *API, *ADMIN]


# The world the admin cases need: one object of every registered model ---------------


@pytest.fixture
def ids(world, care):
    root = User.objects.create_superuser("root", "root@example.com", "pw-Secret-123")
    acme, globex = world.acme, world.globex
    credits_purchase(company=acme, amount="10", office=acme.offices.get(slug="austin"), actor=care)
    pooling_set(company=globex, enabled=True, actor=care, reason="matrix")
    AddOnFactory()
    LogEntry.objects.create(
        user_id=care.pk,
        content_type_id=ContentType.objects.get_for_model(Company).pk,
        object_id=str(acme.pk),
        object_repr=str(acme),
        action_flag=CHANGE,
        change_message="matrix",
    )
    AccessAttempt.objects.create(username="x", ip_address="10.0.0.1", failures_since_start=1)
    AccessLog.objects.create(username="x", ip_address="10.0.0.1")
    AccessFailureLog.objects.create(username="x", ip_address="10.0.0.1", locked_out=False)
    rule = recharge_rule_set(
        company=acme,
        account=Account.objects.get(company=acme, kind="ai_agent"),
        threshold="5",
        amount="10",
        actor=care,
    )
    pool_cap_set(company=acme, office=world.office("acme", "austin"), cap="50", actor=care)
    alert_threshold_set(company=acme, value="1000", actor=care)  # opens alerts
    alert = Alert.objects.filter(company=acme).first()
    WebhookAttempt.objects.create(
        alert=alert, company=acme, attempt=1, url="https://example.com/h", status="failed"
    )
    alert_notify.enqueue(alert.pk)
    boss_x, boss_y = world.users["company_admin_x"], world.users["company_admin_y"]
    invite = invite_create(
        company=acme,
        email="invited@example.com",
        role="company_admin",
        actor=boss_x,
        link_base="http://testserver",
    )
    revoked = invite_create(
        company=acme,
        email="revoked@example.com",
        role="company_admin",
        actor=boss_x,
        link_base="http://testserver",
    )
    revoked_link = invite_token(invite_id=revoked.pk, nonce=revoked.nonce)
    invite_revoke(company=acme, invite_id=revoked.pk, actor=boss_x)
    request_berlin = credit_request_create(
        company=acme,
        office=world.office("acme", "berlin"),
        amount="10",
        actor=world.users["office_admin_b"],
    )
    paris_admin = User.objects.create_user("paris-admin", "paris@example.com", "pw-Secret-123")
    membership_grant(user=paris_admin, company=globex, office=world.office("globex", "paris"))
    request_paris = credit_request_create(
        company=globex, office=world.office("globex", "paris"), amount="10", actor=paris_admin
    )
    samples = {
        "auth.group": Group.objects.first(),
        "auth.user": world.users["no_role"],
        "axes.accessattempt": AccessAttempt.objects.first(),
        "axes.accesslog": AccessLog.objects.first(),
        "axes.accessfailurelog": AccessFailureLog.objects.first(),
        "credits.account": Account.objects.filter(company=acme).first(),
        "credits.ledgerentry": LedgerEntry.objects.filter(company=acme).first(),
        "credits.allowance": Allowance.objects.filter(company=acme).first(),
        "credits.poolingchange": PoolingChange.objects.first(),
        "credits.rechargerule": rule,
        "credits.poolcap": PoolCap.objects.first(),
        "credits.companycontrols": CompanyControls.objects.first(),
        "credits.alert": alert,
        "credits.webhookattempt": WebhookAttempt.objects.first(),
        "credits.controlchange": ControlChange.objects.first(),
        "credits.creditrequest": request_berlin,
        "offices.invite": invite,
        "offices.teamchange": TeamChange.objects.first(),
        "django_tasks_database.dbtaskresult": DBTaskResult.objects.first(),
        "offices.company": acme,
        "offices.office": Office.objects.get(company=acme, slug="austin"),
        "offices.plan": Plan.objects.first(),
        "offices.addon": AddOn.objects.first(),
        "offices.membership": Membership.objects.first(),
        "admin.logentry": LogEntry.objects.first(),
        "usage.service": Service.objects.first(),
        "usage.usagerecord": UsageRecord.objects.filter(company=acme).first(),
        "usage.apikey": ApiKey.objects.filter(company=acme).first(),
    }
    values = {f"obj:{label}": obj.pk for label, obj in samples.items()}
    values |= {
        f"ct:{label}": ContentType.objects.get_for_model(obj).pk for label, obj in samples.items()
    }
    values |= {"user:no_role": world.users["no_role"].pk, "user:root": root.pk}
    values |= {
        "user:office_admin_a": world.users["office_admin_a"].pk,
        "user:company_admin_y": boss_y.pk,
        "invite": invite.pk,
        "revoked_invite_link": revoked_link,
        "request_berlin": request_berlin.pk,
        "request_paris": request_paris.pk,
    }
    values |= {"acme": acme.pk, "globex": globex.pk}
    values["period"] = f"{period_of(timezone.now(), acme.tz):%Y-%m}"
    values |= {
        "paris": world.office("globex", "paris").pk,
        "austin": world.office("acme", "austin").pk,
        "paris_wallet": world.office("globex", "paris").accounts.get().pk,
        "austin_wallet": world.office("acme", "austin").accounts.get().pk,
    }
    return values


def fill(text: str, ids: dict) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: str(ids[m.group(1)]), text)


def check(response, expected, url: str) -> str | None:
    """None when `response` is what was expected, else what went wrong."""
    location = response.get("Location", "")
    if expected == LOGIN:
        ok = response.status_code == 302 and location.startswith("/accounts/login/?next=")
    elif expected == ADMIN_LOGIN:
        ok = response.status_code == 302 and location.startswith("/admin/login/?next=")
    elif isinstance(expected, str):
        ok = response.status_code == 302 and location == expected.removeprefix("→")
    else:
        ok = response.status_code == expected
    if ok:
        return None
    return f"got {response.status_code} {location}".strip() + f", expected {expected}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_role_gets_what_the_matrix_says(world, ids, case):
    url = fill(case.url, ids)
    problems = []
    for role in ROLES:
        expected = case.expect[role]
        if isinstance(expected, str) and expected.startswith("→"):
            expected = fill(expected, ids)
        client = world.client(role)
        kwargs = {}
        if case.data is not None:
            kwargs = {"data": json.dumps(case.data), "content_type": case.content_type}
        response = getattr(client, case.method)(url, **kwargs)
        problem = check(response, expected, url)
        if problem:
            problems.append(f"{role}: {problem}")
            continue
        # A PDF's text is compressed: it prints the Statement its HTML page shows, and
        # that page is searched (the statement rows above).
        is_pdf = response.get("Content-Type", "") == "application/pdf"
        if response.status_code == 200 and not url.startswith("/admin/") and not is_pdf:
            body = (
                b"".join(response.streaming_content) if response.streaming else response.content
            ).decode()
            leaked = [text for text in forbidden_text(role) if text in body]
            if leaked:
                problems.append(f"{role}: the page shows {leaked}")
    assert not problems, f"{case.id}:\n" + "\n".join(problems)


def test_every_url_pattern_is_in_the_matrix():
    # given every pattern the resolver knows
    patterns = set(all_patterns())
    covered = {(case.route, case.name) for case in CASES}
    # then each has at least one case, and the matrix lists no pattern that is gone
    assert patterns - covered == set(), "URL patterns without a row in the matrix"
    assert covered - patterns == set(), "matrix rows for URL patterns that no longer exist"


def test_every_registered_admin_model_is_in_the_matrix():
    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
    assert registered == set(ADMIN_MODELS)


def test_matrix_size(capsys):
    patterns = set(all_patterns())
    checks = len(CASES) * len(ROLES)
    with capsys.disabled():
        print(
            f"\nauthorization matrix: {len(patterns)} URL patterns, {len(CASES)} URLs × "
            f"{len(ROLES)} roles = {checks} checks"
        )
    assert len(CASES) >= len(patterns)


def test_the_leak_check_sees_what_a_role_may_see(world):
    # The mark search above would pass vacuously if pages showed no marks at all.
    body = world.client("company_admin_x").get("/usage/export.csv")
    csv = b"".join(body.streaming_content).decode()
    assert all(MARKS[("acme", slug)] in csv for slug in ("hq", "austin", "berlin"))
    page = world.client("office_admin_a").get("/usage/").content.decode()
    assert MARKS[("acme", "austin")] in page
    api_rows = world.client("key_y").get("/api/v1/usage-events").json()["results"]
    assert {row["user"] for row in api_rows} == {
        MARKS[("globex", "hq")],
        MARKS[("globex", "paris")],
    }
    assert "Globex" in forbidden_text("office_admin_a") and "Austin" in forbidden_text(
        "office_admin_b"
    )


def test_customer_care_cannot_set_a_superusers_password(world):
    # given a superuser, and customer care (who may change users)
    root = User.objects.create_superuser("root", "root@example.com", "pw-Secret-123")
    client = world.client("care")
    # when care posts a new password for the superuser
    response = client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"password1": "Taken-Over-987", "password2": "Taken-Over-987", "usable_password": "true"},
    )
    # then it is refused and the password is unchanged
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.check_password("pw-Secret-123") and not root.check_password("Taken-Over-987")
    # and a forged change form cannot strip the superuser's status either
    response = client.post(
        f"/admin/auth/user/{root.pk}/change/", {"username": "root", "is_active": ""}
    )
    assert response.status_code == 403
    root.refresh_from_db()
    assert root.is_active and root.is_superuser
