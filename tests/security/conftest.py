"""Two tenants, every role of SPEC §5, API keys, and usage whose labels mark whose it is.

Acme (company X): hq (primary), austin (office A), berlin (office B).
Globex (company Y): hq (primary), paris. Every office has one usage event whose user
label is `mark-<company>-<office>`, so a page that leaks another scope's rows shows it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.factories import (
    UserFactory,
    company_admin,
    company_factory,
    event,
    office_admin,
)
from usage.api_auth import api_key_create
from usage.services import usage_ingest

# What "other staff" may do in the admin: look at companies, offices and balances and edit
# a company's name, but not change pooling (SPEC §5).
STAFF_PERMISSIONS = (
    "offices.view_company",
    "offices.change_company",
    "offices.view_office",
    "credits.view_account",
    "credits.view_ledgerentry",
)

SESSION_ROLES = (
    "anonymous",
    "no_role",
    "office_admin_a",
    "office_admin_b",
    "company_admin_x",
    "company_admin_y",
    "staff",
    "care",
)
KEY_ROLES = ("key_x", "key_y")
ROLES = SESSION_ROLES + KEY_ROLES

MARKS = {
    ("acme", "hq"): "mark-acme-hq",
    ("acme", "austin"): "mark-acme-austin",
    ("acme", "berlin"): "mark-acme-berlin",
    ("globex", "hq"): "mark-globex-hq",
    ("globex", "paris"): "mark-globex-paris",
}


def mark(company: str, office: str) -> str:
    return MARKS[(company, office)]


def staff_user(username: str, *perms: str) -> User:
    user = UserFactory(username=username, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache


@dataclass
class World:
    acme: object
    globex: object
    users: dict
    keys: dict

    def client(self, role: str, **defaults) -> Client:
        if role in KEY_ROLES:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {self.keys[role]}"
        client = Client(**defaults)
        user = self.users.get(role)
        if user is not None:
            client.force_login(user)
        return client

    def office(self, company: str, slug: str):
        owner = self.acme if company == "acme" else self.globex
        return owner.offices.get(slug=slug)


@pytest.fixture
def world(services, care) -> World:
    acme = company_factory(slug="acme", name="Acme", offices=("austin", "berlin"))
    globex = company_factory(slug="globex", name="Globex", offices=("paris",))
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    for company in (acme, globex):
        usage_ingest(
            company=company,
            events=[
                event(
                    f"{company.slug}-{office.slug}",
                    office=office.slug,
                    quantity="2",
                    occurred_at=moment,
                    user_label=mark(company.slug, office.slug),
                )
                for office in company.offices.all()
            ],
        )
    users = {
        "no_role": UserFactory(username="nobody"),
        "office_admin_a": office_admin(acme.offices.get(slug="austin"), username="austin-admin"),
        "office_admin_b": office_admin(acme.offices.get(slug="berlin"), username="berlin-admin"),
        "company_admin_x": company_admin(acme, username="acme-admin"),
        "company_admin_y": company_admin(globex, username="globex-admin"),
        "staff": staff_user("staffer", *STAFF_PERMISSIONS),
        "care": care,
    }
    keys = {
        "key_x": api_key_create(company=acme, name="acme sync")[1],
        "key_y": api_key_create(company=globex, name="globex sync")[1],
    }
    return World(acme=acme, globex=globex, users=users, keys=keys)
