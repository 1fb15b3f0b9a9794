import re

from django.test import Client

from tests.api.conftest import ApiClient
from tests.factories import UserFactory
from usage.models import ApiKey


def test_customer_care_creates_a_key_in_the_admin_and_sees_it_once(company, care):
    client = Client()
    client.force_login(care)
    # when: customer care adds a key for acme
    response = client.post(
        "/admin/usage/apikey/add/", {"company": company.pk, "name": "ERP export"}
    )
    # then: the page shows the key once; only its digest is stored
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (key,) = re.findall(r"ucp_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}", response.content.decode())
    stored = ApiKey.objects.get()
    assert (stored.company, stored.name, stored.created_by) == (company, "ERP export", care)
    assert ApiClient(key).get("/api/v1/balance").status_code == 200
    change_page = client.get(f"/admin/usage/apikey/{stored.pk}/change/").content.decode()
    assert stored.display_prefix in change_page
    assert key not in change_page
    assert key not in client.get("/admin/usage/apikey/").content.decode()


def test_customer_care_revokes_a_key_and_it_stops_working(company, care, key):
    client = Client()
    client.force_login(care)
    stored = ApiKey.objects.get()
    response = client.post(
        "/admin/usage/apikey/",
        {"action": "revoke", "_selected_action": [stored.pk]},
        follow=True,
    )
    assert "Revoked 1 API key" in response.content.decode()
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert ApiClient(key).get("/api/v1/balance").status_code == 401


def test_staff_without_the_permission_cannot_see_api_keys(company, key):
    clerk = UserFactory(username="clerk", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get("/admin/usage/apikey/").status_code == 403
