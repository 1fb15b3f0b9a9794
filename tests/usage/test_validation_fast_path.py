"""usage_ingest checks the usual event with one quick test (_plainly_valid) and only looks
for problems in detail when it fails. The quick test must never let through an event the
detailed checks would refuse: for any batch, the verdict and every error message are the
same with the quick test as without it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from core.errors import ValidationFailed
from usage import services as usage_services
from usage.services import UsageEventIn, _validate

NOW = dt.datetime.now(dt.UTC)
MAX_QUANTITY = Decimal(settings.USAGE_MAX_QUANTITY)
TEXTS = st.sampled_from(["", " ", "a", "x" * 200, "x" * 201, "a\x00b", "ü", "\t", "hq", "sms"])
VALUES = {
    "external_id": st.one_of(TEXTS, st.sampled_from([None, 7, "e-1", "e-2"])),
    "office": st.sampled_from(["hq", "austin", "nowhere", "", "h\x00q", None, 3]),
    "service": st.sampled_from(["sms", "ai_agent", "gone", "", None, ["sms"]]),
    "quantity": st.sampled_from(
        [
            Decimal("1"),
            Decimal("0.0001"),
            Decimal("0.00001"),
            Decimal("0"),
            Decimal("-1"),
            Decimal("NaN"),
            Decimal("Infinity"),
            MAX_QUANTITY,
            MAX_QUANTITY + 1,
            MAX_QUANTITY + Decimal("0.0001"),
            "2",
            2,
            2.5,
            "x",
            None,
        ]
    ),
    "occurred_at": st.sampled_from(
        [
            NOW - dt.timedelta(minutes=1),
            NOW + dt.timedelta(days=1),
            dt.datetime(1999, 12, 31, tzinfo=dt.UTC),
            dt.datetime(2026, 1, 1),
            NOW.astimezone(dt.timezone(dt.timedelta(hours=5))),
            "2026-01-01",
            None,
        ]
    ),
    "user_label": st.one_of(TEXTS, st.sampled_from([None, 0, ["a"]])),
    "phone_number": st.one_of(TEXTS, st.sampled_from([None, "x" * 40, "x" * 41, 5])),
    "metadata": st.sampled_from(
        [{}, None, {"a": 1}, {"a": float("nan")}, {"a": "\x00"}, [], [1], "x", {"a": object()}]
    ),
}
PLAIN = {
    "external_id": "e-1",
    "office": "hq",
    "service": "sms",
    "quantity": Decimal("2"),
    "occurred_at": NOW - dt.timedelta(minutes=1),
    "user_label": "Ana",
    "phone_number": "+15550100",
    "metadata": {},
}
# A plain event with up to three of its fields replaced: each odd value gets tried alone.
CHANGES = st.lists(st.sampled_from(list(VALUES)), max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: VALUES[name] for name in names})
)
EVENTS = st.lists(CHANGES.map(lambda change: {**PLAIN, **change}), min_size=1, max_size=3)


def _outcome(company, events) -> list | None:
    try:
        _validate(company, events)
    except ValidationFailed as exc:
        return exc.errors
    return None


@pytest.mark.django_db
@examples(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=EVENTS)
def test_the_quick_test_never_changes_the_verdict(company, monkeypatch, batch):
    events = [UsageEventIn(**fields) for fields in batch]
    quick = _outcome(company, events)
    with monkeypatch.context() as m:
        m.setattr(usage_services, "_plainly_valid", lambda *args: False)
        detailed = _outcome(company, events)
    assert quick == detailed


def test_the_quick_test_passes_a_plain_event(company):
    # the quick test is actually used: a plain event passes it
    from usage.services import _offices_and_services

    offices, services = _offices_and_services(company, {"hq"}, {"sms"})
    event = UsageEventIn("e-1", "hq", "sms", Decimal("2"), NOW - dt.timedelta(minutes=1))
    latest = NOW + dt.timedelta(minutes=5)
    assert usage_services._plainly_valid(event, offices, services, {}, latest, Decimal(10**6))
