"""factory-boy factories. Companies and offices are built through the services, so every
object a test sees has the accounts a real one would have."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth.models import Group, User

from offices.models import AddOn, Company, CreditKind, Office, Plan
from offices.services import company_create, membership_grant, office_create
from usage.models import Service, Unit
from usage.services import UsageEventIn


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.LazyAttribute(lambda o: o.code.replace("-", " ").title())
    included_standard = Decimal("100")
    included_ai_agent = Decimal("10")


class AddOnFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AddOn
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"addon-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    included_standard = Decimal("50")
    included_ai_agent = Decimal("0")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("code",)

    code = "sms"
    name = factory.LazyAttribute(lambda o: o.code.upper())
    unit = Unit.MESSAGE
    rate = Decimal("1")
    credit_kind = CreditKind.STANDARD


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-Secret-123")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def company_factory(
    *,
    slug: str = "acme",
    name: str | None = None,
    plan: Plan | None = None,
    billing_timezone: str = "UTC",
    offices: tuple[str, ...] = (),
) -> Company:
    """A company with primary office `hq` and further offices named by slug."""
    plan = plan or PlanFactory()
    company = company_create(
        name=name or slug.title(),
        slug=slug,
        primary_office_name="HQ",
        primary_office_slug="hq",
        plan=plan,
        billing_timezone=billing_timezone,
    )
    for office_slug in offices:
        office_create(company=company, name=office_slug.title(), slug=office_slug, plan=plan)
    return company


def office_factory(*, company: Company, slug: str, plan: Plan | None = None) -> Office:
    return office_create(company=company, name=slug.title(), slug=slug, plan=plan or PlanFactory())


def customer_care_group() -> Group:
    """The group the data migration creates. A transactional test flushes every table
    afterwards (post_migrate brings back permissions, not data), so it is rebuilt here
    from the migration's own list when missing."""
    group = Group.objects.filter(name="Customer Care").first()
    if group is not None:
        return group
    from importlib import import_module

    from django.contrib.auth.models import Permission

    migration = import_module("credits.migrations.0002_append_only_and_customer_care")
    wanted = [("offices", "change_pooling")]
    for app_label, models in migration.CUSTOMER_CARE_PERMISSIONS.items():
        for model, actions in models.items():
            wanted += [(app_label, f"{action}_{model}") for action in actions]
    group = Group.objects.create(name="Customer Care")
    for app_label, codename in wanted:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return group


def customer_care_user(username: str = "care") -> User:
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(customer_care_group())
    return User.objects.get(pk=user.pk)  # fresh permission cache


def company_admin(company: Company, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{company.slug}-admin")
    membership_grant(user=user, company=company)
    return user


def office_admin(office: Office, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{office.company.slug}-{office.slug}-admin")
    membership_grant(user=user, company=office.company, office=office)
    return user


def event(
    external_id: str,
    *,
    office: str = "hq",
    service: str = "sms",
    quantity="1",
    occurred_at: dt.datetime | None = None,
    **extra,
) -> UsageEventIn:
    return UsageEventIn(
        external_id=external_id,
        office=office,
        service=service,
        quantity=Decimal(quantity),
        occurred_at=occurred_at or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        **extra,
    )
