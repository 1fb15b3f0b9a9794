import os
from decimal import Decimal

import pytest

from offices.models import CreditKind
from tests import clock
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
def late_window_off():
    """The late-event window turned off, for tests of other rules (tests/clock.py)."""
    with clock.late_window_off():
        yield


@pytest.fixture
def care(db):
    return customer_care_user()


@pytest.fixture
def company(db, services):
    """Acme with offices hq (primary), austin and berlin; 100 standard / 10 AI credits each."""
    return company_factory(slug="acme", offices=("austin", "berlin"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `replica` need a real streaming standby (DATABASE_REPLICA_URL, e.g. from
    scripts/pg_replica.sh); every other test expects none, since its history reads would
    then race the replication of what it just wrote. So with a standby configured only
    the replica tests run, and without one they are skipped, each saying why."""
    from django.conf import settings

    has_standby = "replica" in settings.DATABASES
    if has_standby:
        reason = "DATABASE_REPLICA_URL is set: only the `-m replica` tests run against the pair"
    else:
        reason = 'needs a streaming standby: eval "$(scripts/pg_replica.sh env)" (see .ci/run)'
    for item in items:
        if (item.get_closest_marker("replica") is not None) != has_standby:
            item.add_marker(pytest.mark.skip(reason=reason))
    # The PgBouncer smoke tests start gunicorn behind a running PgBouncer.
    if not os.environ.get("PGBOUNCER_URL"):
        skip = pytest.mark.skip(reason='needs PgBouncer: eval "$(scripts/pgbouncer.sh env)"')
        for item in items:
            if item.get_closest_marker("pgbouncer") is not None:
                item.add_marker(skip)
