"""The login lockout (django-axes) locks a username together with the client's address, so
an attacker cannot aim it at a victim; behind proxies the address comes from exactly the
trusted proxies' X-Forwarded-For entries; customer care clears a lockout in the admin."""

import importlib

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, RequestFactory

from core.client_ip import client_ip
from offices.roles import CUSTOMER_CARE_GROUP
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Secret-123"
PROXY = "10.0.0.1"  # the load balancer every request comes through
ATTACKER = "203.0.113.66"
VICTIM = "198.51.100.7"


@pytest.fixture
def victim(db):
    return UserFactory(username="victim")


def log_in(client: Client, password: str, **meta):
    return client.post("/accounts/login/", {"username": "victim", "password": password}, **meta)


def lock_out(**meta):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong", **meta)
    response = log_in(client, PASSWORD, **meta)
    assert response.status_code == 429
    return client


def via_proxy(forwarded_for: str) -> dict:
    return {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": forwarded_for}


def test_behind_a_proxy_a_victim_still_logs_in_while_an_attacker_is_locked_out(victim, settings):
    # given: one trusted proxy, and an attacker who failed the limit with the victim's name
    settings.TRUSTED_PROXY_COUNT = 1
    attacker = lock_out(**via_proxy(ATTACKER))
    # when: the victim logs in through the same proxy from their own address
    response = log_in(Client(), PASSWORD, **via_proxy(VICTIM))
    # then: they get in, and the attacker stays locked out
    assert response.status_code == 302 and response["Location"] == "/"
    assert log_in(attacker, PASSWORD, **via_proxy(ATTACKER)).status_code == 429


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(victim, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    # given: an attacker failing from their own address, each time claiming another
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    # then: the forged header neither spread the failures nor aimed them at the victim
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    response = log_in(client, PASSWORD, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=VICTIM)
    assert response.status_code == 429
    assert log_in(Client(), PASSWORD, REMOTE_ADDR=VICTIM).status_code == 302


def test_with_one_trusted_proxy_the_address_it_saw_counts_not_what_the_client_wrote(
    victim, settings
):
    settings.TRUSTED_PROXY_COUNT = 1
    # given: an attacker who prepends a different forged address to every attempt
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong", **via_proxy(f"{VICTIM}, 192.0.2.{n}, {ATTACKER}"))
    # then: every failure counted against the address the proxy appended
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    assert log_in(client, PASSWORD, **via_proxy(f"192.0.2.99, {ATTACKER}")).status_code == 429
    assert log_in(Client(), PASSWORD, **via_proxy(VICTIM)).status_code == 302


@pytest.mark.parametrize(
    ("count", "forwarded_for", "expected"),
    [
        (0, "198.51.100.7", PROXY),
        (1, "", PROXY),
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "198.51.100.7", "198.51.100.7"),  # entered behind the outer proxy
        (1, " 6.6.6.6 ,2001:db8::1 ", "2001:db8::1"),
        (1, "6.6.6.6, not-an-address", PROXY),
        (1, "6.6.6.6, 198.51.100.7:443", PROXY),
    ],
)
def test_client_ip_reads_only_the_trusted_entries(settings, count, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = count
    request = RequestFactory().get("/", **via_proxy(forwarded_for))
    assert client_ip(request) == expected


def test_a_forged_header_that_is_no_address_is_no_error(victim, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = log_in(Client(), "wrong", **via_proxy("<script>, ' or 1=1 --"))
    assert response.status_code == 200
    assert AccessAttempt.objects.get().ip_address == PROXY


# Clearing a lockout in the admin -----------------------------------------------------------


def test_customer_care_clears_a_lockout_in_the_admin(victim, care):
    # given: the victim locked out from their own address
    victim_client = lock_out(REMOTE_ADDR=VICTIM)
    care_user, care = care, Client()
    care.force_login(care_user)
    # when: customer care finds the locked log-in and clears it
    page = care.get("/admin/axes/accessattempt/?locked_out=yes")
    assert page.status_code == 200 and "victim" in page.content.decode()
    attempt = AccessAttempt.objects.get(username="victim")
    response = care.post(
        "/admin/axes/accessattempt/",
        {"action": "clear_lockouts", "_selected_action": [attempt.pk], "index": 0},
    )
    # then: the victim logs in at once, and the audit trail names who cleared it
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert log_in(victim_client, PASSWORD, REMOTE_ADDR=VICTIM).status_code == 302
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert entry.user.username == "care"
    assert entry.get_change_message() == f"Cleared the lockout of victim from {VICTIM}."


def test_other_staff_cannot_see_or_clear_lockouts(victim, client):
    lock_out(REMOTE_ADDR=VICTIM)
    staff = UserFactory(username="ops", is_staff=True)
    client.force_login(staff)
    attempt = AccessAttempt.objects.get()
    assert client.get("/admin/axes/accessattempt/").status_code == 403
    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "clear_lockouts", "_selected_action": [attempt.pk], "index": 0},
    )
    assert response.status_code == 403
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists()


def test_the_migration_lets_the_customer_care_group_clear_lockouts():
    # given: the group as an existing deployment has it, without the lockout rights
    group = Group.objects.get_or_create(name=CUSTOMER_CARE_GROUP)[0]
    group.permissions.remove(*Permission.objects.filter(content_type__app_label="axes"))
    # when: the migration runs
    migration = importlib.import_module("offices.migrations.0002_customer_care_clears_lockouts")
    state = MigrationExecutor(connection).loader.project_state(
        ("offices", "0002_customer_care_clears_lockouts")
    )
    migration.grant(state.apps, None)
    # then
    granted = group.permissions.filter(content_type__app_label="axes")
    assert set(granted.values_list("codename", flat=True)) == {
        "view_accessattempt",
        "delete_accessattempt",
    }
