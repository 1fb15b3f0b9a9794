import datetime as dt

import pytest
from django.utils import timezone

from tests.api.conftest import URL, ApiClient, usage_event
from usage.api_auth import api_key_create, api_key_revoke
from usage.models import ApiKey, UsageRecord

ENDPOINTS = [("get", "/api/v1/balance"), ("get", URL), ("post", URL)]


def call(client: ApiClient, method: str, path: str):
    if method == "post":
        return client.send_events(usage_event("auth-1"))
    return client.get(path)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer ucp_000000000000." + "A" * 43,
    ],
    ids=["missing", "empty", "no token", "blank token", "basic", "garbage", "unknown"],
)
def test_a_request_without_a_valid_key_gets_401(company, method, path, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = call(ApiClient(**headers), method, path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]
    assert not UsageRecord.objects.exists()


def test_a_key_with_the_right_prefix_but_a_wrong_secret_gets_401(company, key):
    prefix, secret = key.split(".")
    forged = f"{prefix}.{secret[::-1]}" if secret[::-1] != secret else f"{prefix}.{'B' * 43}"
    assert ApiClient(forged).get("/api/v1/balance").status_code == 401
    assert ApiClient(key).get("/api/v1/balance").status_code == 200


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_revoked_key_gets_401(company, key, method, path):
    api_key_revoke(api_key=ApiKey.objects.get())
    assert call(ApiClient(key), method, path).status_code == 401
    assert not UsageRecord.objects.exists()


def test_the_bearer_scheme_is_case_insensitive(company, key):
    assert ApiClient(HTTP_AUTHORIZATION=f"bearer {key}").get("/api/v1/balance").status_code == 200


def test_only_a_digest_and_a_prefix_of_the_key_are_stored(company, key):
    stored = ApiKey.objects.get()
    assert key not in {stored.key_hash, stored.prefix, stored.name}
    assert key.startswith(f"ucp_{stored.prefix}.")
    assert str(stored) == f"billing sync (ucp_{stored.prefix}…)"


def test_a_key_acts_only_on_its_own_company(company, api, other_company, other_api):
    # given: each company charged one event with the same id
    assert api.send_events(usage_event("same-id", quantity="3")).status_code == 200
    assert other_api.send_events(usage_event("same-id", office="paris")).status_code == 200
    # then: each key sees only its own company's balance and records
    assert api.get("/api/v1/balance").json()["company"] == "acme"
    assert other_api.get("/api/v1/balance").json()["company"] == "globex"
    (mine,) = api.get(URL).json()["results"]
    (theirs,) = other_api.get(URL).json()["results"]
    assert (mine["office"], mine["quantity"]) == ("hq", "3.0000")
    assert (theirs["office"], theirs["quantity"]) == ("paris", "1.0000")
    # and: neither may charge or filter by the other's office
    assert api.send_events(usage_event("x", office="paris")).status_code == 422
    assert other_api.get(URL, {"office": "austin"}).status_code == 422


def test_last_use_is_recorded_at_most_once_a_minute(company, key):
    client = ApiClient(key)
    stored = ApiKey.objects.get()
    assert stored.last_used_at is None
    # when: the key is used twice in a row
    client.get("/api/v1/balance")
    first = ApiKey.objects.get().last_used_at
    client.get("/api/v1/balance")
    # then: the first use is recorded; the second does not write again
    assert first is not None
    assert ApiKey.objects.get().last_used_at == first
    # when: the recorded use is over a minute old
    ApiKey.objects.update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    client.get("/api/v1/balance")
    # then: it is refreshed
    assert ApiKey.objects.get().last_used_at > timezone.now() - dt.timedelta(seconds=10)


def test_revoking_twice_keeps_the_first_time(company, key):
    stored = ApiKey.objects.get()
    first = api_key_revoke(api_key=stored).revoked_at
    assert api_key_revoke(api_key=stored).revoked_at == first


def test_keys_are_independent(company, key):
    _, second = api_key_create(company=company, name="second")
    api_key_revoke(api_key=ApiKey.objects.get(name="billing sync"))
    assert ApiClient(key).get("/api/v1/balance").status_code == 401
    assert ApiClient(second).get("/api/v1/balance").status_code == 200
