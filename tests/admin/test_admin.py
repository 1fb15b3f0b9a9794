"""The customer-care admin: every page opens, the pooling toggle, Add credits, and the
rows nobody may write (ledger, usage, pooling history, accounts, audit log)."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import User
from django.urls import reverse

from core.errors import DomainError
from credits.allowances import included_credits
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.services import credits_purchase, pooling_set
from offices.models import Company, CreditKind, Membership, Office, OfficeAddOn, Role
from tests.admin.conftest import form_data
from tests.factories import AddOnFactory, PlanFactory, company_admin, company_factory, event
from usage.models import Service, UsageRecord
from usage.services import usage_ingest

pytestmark = pytest.mark.django_db


def wallet(company, slug) -> Account:
    return Account.objects.get(company=company, kind=AccountKind.WALLET, office__slug=slug)


def pool(company) -> Account:
    return Account.objects.get(company=company, kind=AccountKind.POOL)


def pooling_url(company) -> str:
    return f"/admin/offices/company/{company.pk}/pooling/"


def credits_url(company) -> str:
    return f"/admin/offices/company/{company.pk}/credits/"


def change_url(company) -> str:
    return reverse("admin:offices_company_change", args=[company.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def history(company, care):
    """Some of everything the admin lists: credits, usage, a pooling change, a membership."""
    credits_purchase(
        company=company, amount="30", office=company.offices.get(slug="austin"), actor=care
    )
    usage_ingest(
        company=company,
        events=[event("e1", office="austin", quantity="120"), event("e2", service="ai_agent")],
    )
    pooling_set(company=company, enabled=True, actor=care, reason="asked by the customer")
    company_admin(company)
    return company


# Every page opens -----------------------------------------------------------------------


def visit_everything(client, user) -> set[str]:
    """Open the changelist, the add page and one change page of every registered model the
    user may see; every one must answer 200. Returns the models visited."""
    visited = set()
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}") and not user.has_perm(
            f"{opts.app_label}.change_{opts.model_name}"
        ):
            continue
        info = opts.app_label, opts.model_name
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert response.status_code == 200, (opts.label, "changelist")
        obj = model._default_manager.first()
        if obj is not None:
            response = client.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
            assert response.status_code == 200, (opts.label, "change")
        if user.has_perm(
            f"{opts.app_label}.add_{opts.model_name}"
        ) and model_admin.has_add_permission(type("R", (), {"user": user})()):
            response = client.get(reverse("admin:{}_{}_add".format(*info)))
            assert response.status_code == 200, (opts.label, "add")
        visited.add(opts.label)
    return visited


def test_customer_care_can_open_every_admin_page_it_may_see(care_client, care, history):
    # given: a company with credits, usage, a pooling change and a membership
    care_client.get(change_url(history))  # and an audit trail line
    pooling_set(company=history, enabled=False, actor=care, reason="back")
    # when / then
    visited = visit_everything(care_client, care)
    assert {
        "offices.Company",
        "offices.Office",
        "offices.Plan",
        "offices.AddOn",
        "offices.Membership",
        "usage.Service",
        "usage.UsageRecord",
        "credits.Account",
        "credits.LedgerEntry",
        "credits.Allowance",
        "credits.PoolingChange",
        "admin.LogEntry",
        "auth.User",
    } <= visited
    # and the company page shows balances, pooling history and both tools
    page = care_client.get(change_url(history)).content.decode()
    for text in ("Company pool", "Austin wallet", "AI agent credits", "asked by the customer"):
        assert text in page
    assert "Change pooling" in page and "Add credits" in page


def test_superuser_can_open_every_admin_page(client, superuser, history):
    client.force_login(superuser)
    visited = visit_everything(client, superuser)
    assert len(visited) == len(admin.site._registry)


# The pooling toggle ---------------------------------------------------------------------


def test_pooling_toggle_asks_a_reason_confirms_the_moves_and_records_everything(
    care_client, care, company
):
    # given: pooling off, austin holds 30 and berlin 20 credits
    credits_purchase(
        company=company, amount="30", office=company.offices.get(slug="austin"), actor=care
    )
    credits_purchase(
        company=company, amount="20", office=company.offices.get(slug="berlin"), actor=care
    )
    page = care_client.get(change_url(company)).content.decode()
    assert "Change pooling" in page and pooling_url(company) in page

    # when: the form is opened
    response = care_client.get(pooling_url(company))
    # then: it shows the state and asks for a reason
    assert response.status_code == 200
    body = response.content.decode()
    assert "currently <strong>off</strong>" in body
    assert 'name="reason"' in body and 'value="Continue"' in body

    # when: continued without a reason
    response = care_client.post(pooling_url(company), {"reason": "  ", "target": "on"})
    # then: the error is shown and nothing changed
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    company.refresh_from_db()
    assert not company.pooling_enabled and not PoolingChange.objects.exists()

    # when: continued with a reason
    response = care_client.post(pooling_url(company), {"reason": "Ticket 42", "target": "on"})
    # then: the confirmation lists every wallet and its amount, and nothing moved yet
    assert response.status_code == 200
    moves = [(m.source, m.target, m.amount) for m in response.context["moves"]]
    assert moves == [
        ("Austin wallet", "Company pool", Decimal("30.0000")),
        ("Berlin wallet", "Company pool", Decimal("20.0000")),
        ("HQ wallet", "Company pool", Decimal("0.0000")),
    ]
    body = response.content.decode()
    assert "Austin wallet" in body and "30.0000" in body and "50.0000" in body
    assert 'value="Confirm"' in body and 'type="hidden" name="reason" value="Ticket 42"' in body
    assert wallet(company, "austin").balance == Decimal("30")

    # when: confirmed
    response = care_client.post(
        pooling_url(company), {"reason": "Ticket 42", "target": "on", "confirm": "Confirm"}
    )
    # then: pooling is on, the wallets moved into the pool, history and audit trail written
    assert response.status_code == 302 and response.url == change_url(company)
    assert "Pooling turned on for Acme." in messages_of(care_client.get(response.url))
    company.refresh_from_db()
    assert company.pooling_enabled
    assert pool(company).balance == Decimal("50")
    assert wallet(company, "austin").balance == wallet(company, "berlin").balance == 0
    change = PoolingChange.objects.get()
    assert (change.enabled, change.reason, change.changed_by, change.amount_moved) == (
        True,
        "Ticket 42",
        care,
        Decimal("50"),
    )
    log = LogEntry.objects.get(object_id=str(company.pk))
    assert log.user == care and "Reason: Ticket 42" in log.get_change_message()

    # when: turned off again
    response = care_client.post(pooling_url(company), {"reason": "Undo", "target": "off"})
    moves = [(m.source, m.target, m.amount) for m in response.context["moves"]]
    assert moves == [("Company pool", "HQ wallet", Decimal("50.0000"))]
    response = care_client.post(
        pooling_url(company), {"reason": "Undo", "target": "off", "confirm": "Confirm"}
    )
    # then: the pool moved to the primary office's wallet
    assert "Pooling turned off for Acme." in messages_of(care_client.get(response.url))
    company.refresh_from_db()
    assert not company.pooling_enabled
    assert wallet(company, "hq").balance == Decimal("50") and pool(company).balance == 0


def test_confirming_a_direction_that_is_already_in_place_changes_nothing(care_client, company):
    # given: the operator confirms "off" although pooling is already off (stale page)
    response = care_client.post(
        pooling_url(company), {"reason": "late click", "target": "off", "confirm": "Confirm"}
    )
    # then: a warning, no pooling change
    assert response.status_code == 302
    assert any("already off" in m for m in messages_of(care_client.get(response.url)))
    assert not PoolingChange.objects.exists()


def test_a_refusal_of_the_pooling_service_is_shown_as_an_error_message(
    care_client, company, monkeypatch
):
    # given: the service refuses
    def refuse(**kwargs):
        raise DomainError("The pool is being audited; try later.")

    monkeypatch.setattr("credits.admin.pooling_set", refuse)
    # when
    response = care_client.post(
        pooling_url(company),
        {"reason": "x", "target": "on", "confirm": "Confirm"},
        follow=True,
    )
    # then: an error message, not a server error, and nothing changed
    assert response.status_code == 200
    assert "The pool is being audited; try later." in messages_of(response)
    company.refresh_from_db()
    assert not company.pooling_enabled


def test_staff_without_the_pooling_permission_see_the_status_but_cannot_toggle(
    client, staff_factory, company
):
    # given: staff who may edit companies but not pooling
    user = staff_factory("clerk", "offices.view_company", "offices.change_company")
    client.force_login(user)
    # when: the company page is opened
    response = client.get(change_url(company))
    # then: the status is shown read-only, with no link to the toggle
    body = response.content.decode()
    assert response.status_code == 200
    assert "Off — each office pays its overage" in body
    assert "Change pooling" not in body and "/pooling/" not in body
    assert 'name="pooling_enabled"' not in body
    # and the toggle answers 403 to every step
    assert client.get(pooling_url(company)).status_code == 403
    assert client.post(pooling_url(company), {"reason": "r", "target": "on"}).status_code == 403
    response = client.post(
        pooling_url(company), {"reason": "r", "target": "on", "confirm": "Confirm"}
    )
    assert response.status_code == 403
    company.refresh_from_db()
    assert not company.pooling_enabled and not PoolingChange.objects.exists()


def test_pooling_flag_is_never_editable_through_the_company_form(care_client, company):
    # given: the change form as rendered, with a forged pooling flag added
    response = care_client.get(change_url(company))
    assert 'name="pooling_enabled"' not in response.content.decode()
    data = form_data(response)
    data.update({"name": "Acme Renamed", "pooling_enabled": "on", "pooling_changed_at": "x"})
    # when: saved
    response = care_client.post(change_url(company), data)
    # then: the name changed, the flag did not
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.name == "Acme Renamed" and not company.pooling_enabled
    # and no list or bulk action edits it either
    model_admin = admin.site._registry[Company]
    assert "pooling_enabled" not in (model_admin.list_editable or ())
    request = type("R", (), {"user": User.objects.get(username="care"), "GET": {}})()
    assert all("pool" not in name for name in model_admin.get_actions(request))


# Companies and offices ------------------------------------------------------------------


def test_the_company_page_moves_the_primary_flag_and_insists_on_exactly_one(care_client, company):
    url = change_url(company)
    data = form_data(care_client.get(url))
    index = {data[f"offices-{i}-slug"]: i for i in range(int(data["offices-TOTAL_FORMS"]))}
    # when: two offices are marked primary
    both = {**data, f"offices-{index['austin']}-is_primary": "on"}
    response = care_client.post(url, both)
    # then: a clear error and nothing changed
    assert response.status_code == 200
    assert "exactly one primary office; 2 are marked primary" in response.content.decode()
    assert company.offices.get(is_primary=True).slug == "hq"
    # when: none is
    none = {k: v for k, v in data.items() if not k.endswith("is_primary")}
    assert "none is marked primary" in care_client.post(url, none).content.decode()
    # when: the primary flag moves from hq to austin
    moved = {**none, f"offices-{index['austin']}-is_primary": "on"}
    response = care_client.post(url, moved)
    # then: austin is the one primary office
    assert response.status_code == 302
    assert list(company.offices.filter(is_primary=True).values_list("slug", flat=True)) == [
        "austin"
    ]


def test_adding_a_company_creates_its_primary_office_and_accounts(care_client, care):
    plan = PlanFactory(code="business")
    base = {
        "name": "Initech",
        "slug": "initech",
        "billing_timezone": "Europe/Berlin",
        "offices-TOTAL_FORMS": "2",
        "offices-INITIAL_FORMS": "0",
        "offices-MIN_NUM_FORMS": "0",
        "offices-MAX_NUM_FORMS": "1000",
        "offices-0-name": "Main",
        "offices-0-slug": "main",
        "offices-0-plan": str(plan.pk),
        "offices-1-name": "Branch",
        "offices-1-slug": "branch",
        "offices-1-plan": str(plan.pk),
    }
    add_url = reverse("admin:offices_company_add")
    assert care_client.get(add_url).status_code == 200
    # when: no office is marked primary
    response = care_client.post(add_url, base)
    # then: the error, and no company
    assert response.status_code == 200
    assert "exactly one primary office" in response.content.decode()
    assert not Company.objects.filter(slug="initech").exists()
    # when: "Main" is primary
    response = care_client.post(add_url, {**base, "offices-0-is_primary": "on"})
    # then: the company has that one primary office, both offices and every account
    assert response.status_code == 302
    company = Company.objects.get(slug="initech")
    assert company.billing_timezone == "Europe/Berlin"
    assert [(o.slug, o.is_primary) for o in company.offices.order_by("slug")] == [
        ("branch", False),
        ("main", True),
    ]
    kinds = sorted(Account.objects.filter(company=company).values_list("kind", flat=True))
    assert kinds == ["ai_agent", "pool", "wallet", "wallet"]
    assert LogEntry.objects.filter(
        object_id=str(company.pk), action_flag=ADDITION, user=care
    ).exists()


def test_adding_an_office_gives_it_a_wallet(care_client, company):
    plan = PlanFactory(code="essentials")
    response = care_client.post(
        reverse("admin:offices_office_add"),
        {
            "company": str(company.pk),
            "name": "London",
            "slug": "london",
            "plan": str(plan.pk),
            "office_addons-TOTAL_FORMS": "0",
            "office_addons-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    london = Office.objects.get(company=company, slug="london")
    assert not london.is_primary
    assert Account.objects.filter(office=london, kind=AccountKind.WALLET).exists()


def test_membership_role_follows_its_scope(care_client, company):
    user = User.objects.create_user("dana")
    add_url = reverse("admin:offices_membership_add")
    response = care_client.post(add_url, {"user": user.pk, "company": company.pk})
    assert response.status_code == 302
    austin = company.offices.get(slug="austin")
    response = care_client.post(
        add_url, {"user": user.pk, "company": company.pk, "office": austin.pk}
    )
    assert response.status_code == 302
    roles = set(Membership.objects.filter(user=user).values_list("role", "office__slug"))
    assert roles == {(Role.COMPANY_ADMIN, None), (Role.OFFICE_ADMIN, "austin")}


# Read-only history ----------------------------------------------------------------------

READ_ONLY = [LedgerEntry, UsageRecord, PoolingChange, Account, Allowance, LogEntry]


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_history_rows_cannot_be_added_changed_or_deleted_even_by_a_superuser(
    client, superuser, history, model
):
    client.force_login(superuser)
    if model is LogEntry:
        client.post(pooling_url(history), {"reason": "r", "target": "off", "confirm": "Confirm"})
    obj = model._default_manager.first()
    before = model._default_manager.count()
    info = model._meta.app_label, model._meta.model_name
    changelist = reverse("admin:{}_{}_changelist".format(*info))
    change = reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
    delete = reverse("admin:{}_{}_delete".format(*info), args=[obj.pk])
    add = reverse("admin:{}_{}_add".format(*info))

    # viewing is fine, but the page offers no save or delete
    response = client.get(change)
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    # writing is forbidden
    assert client.get(add).status_code == 403
    assert client.post(add, {}).status_code == 403
    assert client.post(change, {}).status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    # and the list has no bulk delete
    response = client.get(changelist)
    assert response.status_code == 200
    assert "delete_selected" not in response.content.decode()
    client.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "index": 0})
    assert model._default_manager.count() == before
    assert model._default_manager.filter(pk=obj.pk).exists()


def test_usage_and_ledger_lists_search_and_filter(care_client, history):
    url = reverse("admin:usage_usagerecord_changelist")
    response = care_client.get(url, {"q": "e1"})
    assert [r.external_id for r in response.context["cl"].result_list] == ["e1"]
    austin = history.offices.get(slug="austin")
    response = care_client.get(url, {"office": austin.pk, "pooling_on__exact": "0"})
    assert {r.office_id for r in response.context["cl"].result_list} == {austin.pk}
    response = care_client.get(url, {"office": "not-a-number"})
    assert response.status_code == 200 and not response.context["cl"].result_list
    ledger = reverse("admin:credits_ledgerentry_changelist")
    response = care_client.get(ledger, {"entry_type__exact": EntryType.POOLING_TRANSFER})
    entries = response.context["cl"].result_list
    assert entries and {e.entry_type for e in entries} == {EntryType.POOLING_TRANSFER}
    response = care_client.get(ledger, {"q": "asked by the customer"})
    assert response.context["cl"].result_list


def test_the_audit_trail_shows_staff_changes_to_customer_care(care_client, care, company):
    care_client.post(pooling_url(company), {"reason": "Ticket 7", "target": "on", "confirm": "1"})
    response = care_client.get(reverse("admin:admin_logentry_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Pooling turned on. Reason: Ticket 7" in body and "care" in body


# Add credits -----------------------------------------------------------------------------


def add_credits(client, company, **fields):
    data = {"entry_type": "purchase", "kind": "standard", "idempotency_key": "", **fields}
    return client.post(credits_url(company), data)


def test_add_credits_needs_a_memo_and_then_records_the_entry(care_client, care, company):
    austin = company.offices.get(slug="austin")
    assert care_client.get(credits_url(company)).status_code == 200
    # when: no memo
    response = add_credits(care_client, company, office=austin.pk, amount="100", memo="")
    # then: the memo field says so and nothing is written
    assert response.status_code == 400
    assert response.context["form"].errors["memo"] == ["This field is required."]
    assert not LedgerEntry.objects.exists()
    # when: with a memo
    response = add_credits(care_client, company, office=austin.pk, amount="100", memo="Order 5531")
    # then: one purchase into austin's wallet, shown in the success message and the audit trail
    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.entry_type, entry.amount, entry.account, entry.memo, entry.created_by) == (
        EntryType.PURCHASE,
        Decimal("100"),
        wallet(company, "austin"),
        "Order 5531",
        care,
    )
    message = messages_of(care_client.get(response.url))[0]
    assert f"entry #{entry.pk}" in message and "+100.0000" in message and "Austin wallet" in message
    log = LogEntry.objects.get(object_id=str(company.pk))
    assert "Memo: Order 5531" in log.get_change_message()


def test_add_credits_shows_service_refusals_on_their_fields(care_client, care, company):
    austin = company.offices.get(slug="austin")
    # standard credits while pooling is off need an office
    response = add_credits(care_client, company, amount="10", memo="m")
    assert response.status_code == 400
    assert response.context["form"].errors["office"] == ["Choose an office: pooling is off."]
    # purchases are positive
    response = add_credits(care_client, company, office=austin.pk, amount="-5", memo="m")
    assert response.context["form"].errors["amount"] == ["Must be greater than zero."]
    # an adjustment cannot take a balance below zero
    response = add_credits(
        care_client, company, entry_type="adjustment", office=austin.pk, amount="-5", memo="m"
    )
    assert response.status_code == 400
    assert "cannot be taken" in str(response.context["form"].non_field_errors())
    # not a number
    response = add_credits(care_client, company, office=austin.pk, amount="NaN", memo="m")
    assert "amount" in response.context["form"].errors
    assert not LedgerEntry.objects.exists()


def test_add_credits_adjusts_and_grants_ai_credits(care_client, care, company):
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="100", office=austin, actor=care)
    response = add_credits(
        care_client,
        company,
        entry_type="adjustment",
        office=austin.pk,
        amount="-40",
        memo="refund of a duplicate order",
    )
    assert response.status_code == 302
    assert wallet(company, "austin").balance == Decimal("60")
    response = add_credits(
        care_client, company, entry_type="grant", kind="ai_agent", amount="25", memo="trial"
    )
    assert response.status_code == 302
    ai = Account.objects.get(company=company, kind=AccountKind.AI_AGENT)
    assert ai.balance == Decimal("25")
    assert ai.entries.get().entry_type == EntryType.GRANT


def test_add_credits_counts_a_double_submit_once(care_client, company):
    austin = company.offices.get(slug="austin")
    data = {"office": austin.pk, "amount": "10", "memo": "m", "idempotency_key": "k-1"}
    first = add_credits(care_client, company, **data)
    second = add_credits(care_client, company, **data)
    assert first.status_code == second.status_code == 302
    assert LedgerEntry.objects.count() == 1
    assert wallet(company, "austin").balance == Decimal("10")
    assert any("already submitted" in m for m in messages_of(care_client.get(second.url)))


def test_add_credits_needs_the_ledger_permission(client, staff_factory, company):
    user = staff_factory("viewer", "offices.view_company", "offices.change_company")
    client.force_login(user)
    body = client.get(change_url(company)).content.decode()
    assert "Add credits" not in body and "/credits/" not in body
    assert client.get(credits_url(company)).status_code == 403
    austin = company.offices.get(slug="austin")
    response = add_credits(client, company, office=austin.pk, amount="10", memo="m")
    assert response.status_code == 403
    assert not LedgerEntry.objects.exists()


def test_customer_care_cannot_grant_rights_to_staff_accounts(care_client, care):
    # given: care may edit users, but is not a superuser
    url = reverse("admin:auth_user_change", args=[care.pk])
    response = care_client.get(url)
    assert response.status_code == 200
    assert 'name="is_superuser"' not in response.content.decode()
    # when: a forged form makes care a superuser
    data = form_data(response)
    data.update({"is_superuser": "on", "first_name": "Casey"})
    response = care_client.post(url, data)
    # then: the harmless change is saved, the right is not
    assert response.status_code == 302
    care.refresh_from_db()
    assert care.first_name == "Casey" and not care.is_superuser


def test_office_add_ons_are_set_on_the_office_page(care_client, company):
    # given: an add-on worth 50 standard credits a month
    addon = AddOnFactory(code="sms-bundle")
    austin = company.offices.get(slug="austin")
    url = reverse("admin:offices_office_change", args=[austin.pk])
    data = form_data(care_client.get(url))
    # when: austin gets two of them
    data.update(
        {
            "office_addons-TOTAL_FORMS": "1",
            "office_addons-0-addon": str(addon.pk),
            "office_addons-0-quantity": "2",
        }
    )
    response = care_client.post(url, data)
    # then: its allowance includes them
    assert response.status_code == 302
    assert OfficeAddOn.objects.get(office=austin, addon=addon).quantity == 2
    assert included_credits(austin, CreditKind.STANDARD) == Decimal("200")


def test_service_rates_are_edited_in_the_list_and_old_records_keep_their_rate(care_client, company):
    # given: 10 SMS charged at 1 credit each
    usage_ingest(company=company, events=[event("e1", quantity="10")])
    url = reverse("admin:usage_service_changelist")
    formset = care_client.get(url).context["cl"].formset
    data = {"_save": "Save"}
    management = formset.management_form
    data.update({management.add_prefix(n): management[n].value() for n in management.fields})
    for form in formset.forms:
        for name in form.fields:
            value = form[name].value()
            if value not in (None, False):
                data[form.add_prefix(name)] = "on" if value is True else value
        if form.instance.code == "sms":
            data[form.add_prefix("rate")] = "1.5"
    # when: the SMS rate is raised in the list
    response = care_client.post(url, data)
    # then: the new rate is stored, the charged record keeps the old one
    assert response.status_code == 302
    assert Service.objects.get(code="sms").rate == Decimal("1.5")
    record = UsageRecord.objects.get(external_id="e1")
    assert (record.rate, record.cost) == (Decimal("1"), Decimal("10"))


def test_add_credits_refuses_another_companys_office_and_huge_amounts(care_client, company):
    other = company_factory(slug="globex")
    response = add_credits(
        care_client, company, office=other.offices.get().pk, amount="10", memo="m"
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.context["form"].errors["office"][0]
    austin = company.offices.get(slug="austin")
    response = add_credits(care_client, company, office=austin.pk, amount="5000000", memo="m")
    assert response.status_code == 400
    assert "At most" in response.context["form"].errors["amount"][0]
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("suffix", ["pooling", "credits"])
def test_company_tools_answer_404_for_unknown_companies_and_send_anonymous_to_login(
    client, care_client, suffix
):
    assert care_client.get(f"/admin/offices/company/999999/{suffix}/").status_code == 404
    assert care_client.get(f"/admin/offices/company/abc/{suffix}/").status_code == 404
    client.logout()
    response = client.get(f"/admin/offices/company/1/{suffix}/")
    assert response.status_code == 302 and "/admin/login/" in response.url
