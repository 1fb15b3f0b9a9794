from decimal import Decimal

import pytest

from offices.models import CreditKind
from tests.factories import ServiceFactory, company_factory, customer_care_user
from usage.models import Unit


@pytest.fixture
def services(db):
    """The standard catalog: SMS at 1 credit/message, international calls at 0.25/minute,
    AI agent conversations at 2 AI credits each."""
    return {
        "sms": ServiceFactory(code="sms", unit=Unit.MESSAGE, rate=Decimal("1")),
        "call_international": ServiceFactory(
            code="call_international", unit=Unit.MINUTE, rate=Decimal("0.25")
        ),
        "ai_agent": ServiceFactory(
            code="ai_agent",
            unit=Unit.CONVERSATION,
            rate=Decimal("2"),
            credit_kind=CreditKind.AI_AGENT,
        ),
    }


@pytest.fixture
def care(db):
    return customer_care_user()


@pytest.fixture
def company(db, services):
    """Acme with offices hq (primary), austin and berlin; 100 standard / 10 AI credits each."""
    return company_factory(slug="acme", offices=("austin", "berlin"))
