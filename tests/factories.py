"""factory-boy factories. Companies and offices are built through the services, so every
object a test sees has the accounts a real one would have."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth.models import User

from credits.accounts import company_open, office_open
from offices.models import AddOn, Company, CreditKind, Office, Plan
from offices.roles import customer_care_group_ensure
from offices.services import membership_grant
from usage.events import UsageEvent
from usage.models import Service, Unit


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
    company = company_open(
        name=name or slug.title(),
        slug=slug,
        primary_office_name="HQ",
        primary_office_slug="hq",
        plan=plan,
        billing_timezone=billing_timezone,
    )
    for office_slug in offices:
        office_open(company=company, name=office_slug.title(), slug=office_slug, plan=plan)
    return company


def office_factory(*, company: Company, slug: str, plan: Plan | None = None) -> Office:
    return office_open(company=company, name=slug.title(), slug=slug, plan=plan or PlanFactory())


def customer_care_user(username: str = "care") -> User:
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(customer_care_group_ensure())
    return User.objects.get(pk=user.pk)  # fresh permission cache


def company_admin(company: Company, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{company.slug}-admin")
    membership_grant(user=user, company=company)
    return user


def office_admin(office: Office, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{office.company.slug}-{office.slug}-admin")
    membership_grant(user=user, company=office.company, office=office)
    return user


# When events happen unless a test says otherwise: fixed for the session, so sending the
# same event again is the same event (an id re-sent with other content is a conflict).
DEFAULT_WHEN = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).replace(microsecond=0)


def event(
    external_id: str,
    *,
    office: str = "hq",
    service: str = "sms",
    quantity="1",
    occurred_at: dt.datetime | None = None,
    **extra,
) -> UsageEvent:
    return UsageEvent(
        external_id=external_id,
        office=office,
        service=service,
        quantity=Decimal(quantity),
        occurred_at=occurred_at or DEFAULT_WHEN,
        **extra,
    )
