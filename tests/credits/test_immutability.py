"""Ledger entries, usage records and pooling changes are append-only (SPEC §6.8): every
ORM path that could change or delete a stored row is refused, and on PostgreSQL a
trigger refuses raw SQL too. Each attempt is checked against a snapshot of the table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.forms.models import model_to_dict

from core.immutable import ImmutableError
from credits.models import LedgerEntry, PoolingChange
from credits.services import credits_purchase, pooling_set
from tests.factories import event
from usage.models import UsageRecord
from usage.services import usage_ingest

# One field per model that an attacker would like to change, and a new value for it.
TARGETS = {
    LedgerEntry: ("amount", Decimal("999")),
    UsageRecord: ("cost", Decimal("999")),
    PoolingChange: ("reason", "rewritten"),
}


def _refresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def _clone(obj, **changes):
    """A new, unsaved instance carrying an existing row's primary key."""
    values = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    values.update(changes)
    return type(obj)(**values)


def _attempts(obj, field_name, value):
    """(name, callable) for every ORM route to an UPDATE or DELETE of `obj`'s row."""
    model = type(obj)
    manager = model.objects
    base = model._base_manager
    related = obj.company.__class__.objects.get(pk=obj.company_id)
    reverse = getattr(related, model._meta.get_field("company").remote_field.related_name)

    def changed_instance():
        fresh = _refresh(obj)
        setattr(fresh, field_name, value)
        return fresh

    return [
        ("instance.save()", lambda: changed_instance().save()),
        (
            "instance.save(update_fields)",
            lambda: changed_instance().save(update_fields=[field_name]),
        ),
        ("instance.delete()", lambda: _refresh(obj).delete()),
        ("queryset.update()", lambda: manager.filter(pk=obj.pk).update(**{field_name: value})),
        ("queryset.delete()", lambda: manager.filter(pk=obj.pk).delete()),
        ("bulk_update()", lambda: manager.bulk_update([changed_instance()], [field_name])),
        (
            "select_for_update().update()",
            lambda: manager.select_for_update().filter(pk=obj.pk).update(**{field_name: value}),
        ),
        ("_base_manager update()", lambda: base.filter(pk=obj.pk).update(**{field_name: value})),
        ("_base_manager delete()", lambda: base.filter(pk=obj.pk).delete()),
        (
            "related manager update()",
            lambda: reverse.filter(pk=obj.pk).update(**{field_name: value}),
        ),
        ("related manager delete()", lambda: reverse.filter(pk=obj.pk).delete()),
        ("new instance with its pk .save()", lambda: _clone(obj, **{field_name: value}).save()),
        (
            "save(force_update=True)",
            lambda: _clone(obj, **{field_name: value}).save(force_update=True),
        ),
        (
            "bulk_create(update_conflicts=True)",
            lambda: manager.bulk_create(
                [_clone(obj, **{field_name: value})],
                update_conflicts=True,
                unique_fields=["id"],
                update_fields=[field_name],
            ),
        ),
        (
            "update_or_create()",
            lambda: manager.update_or_create(pk=obj.pk, defaults={field_name: value}),
        ),
    ]


@pytest.fixture
def rows(company, care):
    """One stored row of each append-only model."""
    hq = company.offices.get(slug="hq")
    credits_purchase(company=company, amount="40", office=hq, actor=care)
    usage_ingest(company=company, events=[event("e1", quantity="130")])
    pooling_set(company=company, enabled=True, actor=care, reason="share credits")
    return {
        LedgerEntry: LedgerEntry.objects.filter(entry_type="usage").get(),
        UsageRecord: UsageRecord.objects.get(external_id="e1"),
        PoolingChange: PoolingChange.objects.get(),
    }


def _snapshot(model):
    return [model_to_dict(o) for o in model.objects.order_by("pk")]


@pytest.mark.parametrize("model", list(TARGETS), ids=lambda m: m.__name__)
def test_orm_refuses_every_change_and_delete(rows, model):
    obj = rows[model]
    field_name, value = TARGETS[model]
    before = _snapshot(model)
    tried = []
    for name, attempt in _attempts(obj, field_name, value):
        # when
        with pytest.raises((ImmutableError, IntegrityError)) as refused, transaction.atomic():
            attempt()
        # then: refused by the ORM itself (or by the primary key), and nothing changed
        assert _snapshot(model) == before, name
        tried.append((name, type(refused.value).__name__))
    assert len(tried) == 15
    # Only a brand-new instance that reuses a stored pk is stopped by the database (the
    # insert collides); every other route is refused before any SQL runs.
    assert [n for n, exc in tried if exc != "ImmutableError"] == [
        "new instance with its pk .save()"
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's")
@pytest.mark.parametrize("model", list(TARGETS), ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "statement", ["UPDATE {table} SET id = id WHERE id = %s", "DELETE FROM {table} WHERE id = %s"]
)
def test_trigger_refuses_raw_sql(rows, model, statement):
    obj = rows[model]
    before = _snapshot(model)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement.format(table=model._meta.db_table), [obj.pk])
    assert _snapshot(model) == before


def test_new_rows_can_still_be_added(rows, company, care):
    # given / when: appending is what these tables are for
    usage_ingest(company=company, events=[event("e2", quantity="1")])
    pooling_set(company=company, enabled=False, actor=care, reason="back to wallets")
    # then
    assert UsageRecord.objects.count() == 2
    assert PoolingChange.objects.count() == 2
