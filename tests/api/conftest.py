import datetime as dt
import json

import pytest
from django.test import Client

from tests.factories import DEFAULT_WHEN, company_factory
from usage.api_auth import api_key_create

URL = "/api/v1/usage-events"


def minutes_ago(minutes: int = 1) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).isoformat()


# The factories' moment, fixed for the session: the same event sent again (through the
# API or the service) is the same event; an id re-sent with other content is a conflict.


def usage_event(event_id: str, **fields) -> dict:
    """One event as a client sends it: an SMS from hq a minute ago, unless told otherwise."""
    return {
        "id": event_id,
        "office": "hq",
        "service": "sms",
        "quantity": "1",
        "occurred_at": DEFAULT_WHEN.isoformat(),
        **fields,
    }


class ApiClient(Client):
    """A test client that sends the bearer key and JSON bodies."""

    def __init__(self, key: str | None = None, **defaults):
        if key is not None:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        super().__init__(**defaults)

    def send_events(self, *events: dict):
        return self.post(URL, json.dumps({"events": list(events)}), content_type="application/json")


@pytest.fixture
def key(company) -> str:
    return api_key_create(company=company, name="billing sync")[1]


@pytest.fixture
def api(key) -> ApiClient:
    return ApiClient(key)


@pytest.fixture
def other_company(services):
    return company_factory(slug="globex", offices=("paris",))


@pytest.fixture
def other_api(other_company) -> ApiClient:
    return ApiClient(api_key_create(company=other_company, name="globex sync")[1])
