"""Demo data: Acme Corp (four offices, pooling turned on by customer care 25 days ago) and
Globex (pooling off), with a catalog, logins and about 75 days of usage.

Everything is written through the services. The history is replayed in time order with
the clock set to each simulated moment, so ledger entries, usage batches and the pooling
change carry the times they would have had. Event ids and purchase idempotency keys are
deterministic, so running the command again charges and buys nothing new (on a later day
it charges the days that have passed since). A login that exists keeps its password
unless --password is given: re-seeding never undoes a password someone changed."""

from __future__ import annotations

import datetime as dt
import random
import time
import zoneinfo
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from unittest import mock

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from credits.accounts import company_open, office_open
from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
from credits.models import (
    Account,
    AccountKind,
    ControlChange,
    CreditRequest,
    LedgerEntry,
    PoolingChange,
)
from credits.requests.services import credit_request_create
from credits.services import credits_add, pooling_set
from offices.models import AddOn, Company, CreditKind, Office, Plan
from offices.roles import customer_care_group_ensure
from offices.services import membership_grant, office_addon_set
from usage.events import UsageEvent
from usage.models import Service, Unit
from usage.services import usage_ingest

DEFAULT_PASSWORD = "demo-pass-2026"  # noqa: S105 - a documented demo login
DAYS = 75
POOLING_ON_DAYS_AGO = 25
POOLING_REASON = (
    "Acme asked to share credits across offices after Berlin ran out of wallet credits "
    "(ticket CS-2291)."
)

# Money controls (SPEC §8), set 8 days ago: Acme's AI agent credits recharge once a month
# when below 500 and London may draw at most 200 from the pool; Globex warns when the
# Capital City wallet is below 250 (it is: the demo shows an open alert).
CONTROLS_DAYS_AGO = 8
CONTROLS = {
    "acme": {"ai_rule": ("500", "250", 1), "caps": {"london": "200"}},
    "globex": {"thresholds": {"capital-city": "250"}},
}

PLANS = [
    # code, name, included standard, included AI agent credits per month
    ("essentials", "Essentials", "400", "0"),
    ("business", "Business", "1500", "40"),
    ("enterprise", "Enterprise", "5000", "150"),
]
ADDONS = [
    ("extra-minutes", "Extra minutes (1,000 credits)", "1000", "0"),
    ("sms-bundle", "SMS bundle (250 credits)", "250", "0"),
    ("ai-boost", "AI agent boost (100 AI credits)", "0", "100"),
]
SERVICES = [
    # code, name, unit, rate (credits per unit), credit kind
    ("call_domestic", "Domestic call", Unit.MINUTE, "0.5", CreditKind.STANDARD),
    ("call_international", "International call", Unit.MINUTE, "3", CreditKind.STANDARD),
    ("toll_free_inbound", "Toll-free inbound call", Unit.MINUTE, "0.8", CreditKind.STANDARD),
    ("sms", "SMS", Unit.MESSAGE, "0.2", CreditKind.STANDARD),
    ("mms", "MMS", Unit.MESSAGE, "0.6", CreditKind.STANDARD),
    ("fax", "Fax", Unit.PAGE, "0.4", CreditKind.STANDARD),
    ("ai_agent", "AI agent conversation", Unit.CONVERSATION, "4", CreditKind.AI_AGENT),
]


@dataclass(frozen=True)
class OfficeSpec:
    slug: str
    name: str
    plan: str
    tz: str
    per_day: tuple[int, int]  # events on a weekday (min, max); weekends get a third
    mix: dict[str, int]  # service code → weight
    people: tuple[tuple[str, str], ...]  # (user label, phone number)
    addons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class CompanySpec:
    slug: str
    name: str
    tz: str
    offices: tuple[OfficeSpec, ...]  # the first one is the primary office
    admin: str


ACME = CompanySpec(
    slug="acme",
    name="Acme Corp",
    tz="America/New_York",
    admin="acme-admin",
    offices=(
        OfficeSpec(
            "hq",
            "Headquarters",
            "enterprise",
            "America/New_York",
            (12, 18),
            {
                "call_domestic": 40,
                "call_international": 8,
                "toll_free_inbound": 15,
                "sms": 20,
                "mms": 4,
                "fax": 3,
                "ai_agent": 10,
            },
            (
                ("Dana Reyes", "+1 212 555 0101"),
                ("Marcus Chen", "+1 212 555 0102"),
                ("Priya Natarajan", "+1 212 555 0103"),
                ("Tom Becker", "+1 212 555 0104"),
            ),
            (("ai-boost", 1),),
        ),
        OfficeSpec(
            "austin",
            "Austin",
            "business",
            "America/Chicago",
            (12, 16),
            {
                "call_domestic": 45,
                "call_international": 12,
                "toll_free_inbound": 20,
                "sms": 15,
                "mms": 3,
                "fax": 2,
                "ai_agent": 9,
            },
            (
                ("Jordan Miller", "+1 512 555 0141"),
                ("Aisha Khan", "+1 512 555 0142"),
                ("Luis Ortega", "+1 512 555 0143"),
            ),
        ),
        OfficeSpec(
            "berlin",
            "Berlin",
            "essentials",
            "Europe/Berlin",
            (6, 9),
            {
                "call_domestic": 25,
                "call_international": 30,
                "sms": 20,
                "mms": 4,
                "fax": 6,
                "ai_agent": 10,
            },
            (
                ("Lena Vogel", "+49 30 5555 0171"),
                ("Jonas Weber", "+49 30 5555 0172"),
                ("Mia Schneider", "+49 30 5555 0173"),
            ),
            (("sms-bundle", 1),),
        ),
        OfficeSpec(
            "london",
            "London",
            "essentials",
            "Europe/London",
            (5, 7),
            {
                "call_domestic": 40,
                "call_international": 20,
                "toll_free_inbound": 10,
                "sms": 25,
                "fax": 5,
            },
            (("Oliver Grant", "+44 20 7946 0181"), ("Chloe Patel", "+44 20 7946 0182")),
        ),
    ),
)
GLOBEX = CompanySpec(
    slug="globex",
    name="Globex",
    tz="America/Chicago",
    admin="globex-admin",
    offices=(
        OfficeSpec(
            "springfield",
            "Springfield",
            "business",
            "America/Chicago",
            (4, 7),
            {"call_domestic": 50, "call_international": 5, "sms": 30, "fax": 5, "ai_agent": 10},
            (("Hank Scorpio", "+1 217 555 0191"), ("Frank Grimes", "+1 217 555 0192")),
        ),
        OfficeSpec(
            "capital-city",
            "Capital City",
            "essentials",
            "America/Chicago",
            (4, 6),
            {"call_domestic": 50, "call_international": 10, "sms": 40},
            (("Lurleen Lumpkin", "+1 217 555 0193"),),
        ),
    ),
)


@dataclass(frozen=True)
class Step:
    """One credit operation of the replayed history, `days_ago` at `hour` (company time)."""

    days_ago: int
    hour: float
    key: str
    amount: str
    entry_type: str = "purchase"
    kind: str = CreditKind.STANDARD
    office: str | None = None
    memo: str = ""


ACME_STEPS = [
    Step(DAYS, 8.5, "seed:acme:hq:opening", "3000", office="hq", memo="Opening purchase"),
    Step(DAYS, 8.6, "seed:acme:austin:opening", "1500", office="austin", memo="Opening purchase"),
    Step(DAYS, 8.7, "seed:acme:berlin:opening", "600", office="berlin", memo="Opening purchase"),
    Step(DAYS, 8.8, "seed:acme:london:opening", "300", office="london", memo="Opening purchase"),
    Step(DAYS, 8.9, "seed:acme:ai:opening", "400", kind=CreditKind.AI_AGENT, memo="AI credits"),
    Step(48, 10, "seed:acme:berlin:topup", "1000", office="berlin", memo="Top-up"),
    Step(
        40,
        11,
        "seed:acme:london:goodwill",
        "300",
        "grant",
        office="london",
        memo="Goodwill credit after the 3-hour outage",
    ),
    Step(20, 9.25, "seed:acme:pool:purchase", "4000", memo="Shared pool purchase"),
    Step(12, 9, "seed:acme:ai:topup", "300", kind=CreditKind.AI_AGENT, memo="AI credits top-up"),
]
GLOBEX_STEPS = [
    Step(
        DAYS,
        9,
        "seed:globex:springfield:opening",
        "800",
        office="springfield",
        memo="Opening purchase",
    ),
    Step(
        DAYS,
        9.1,
        "seed:globex:capital-city:opening",
        "200",
        office="capital-city",
        memo="Opening purchase",
    ),
    Step(DAYS, 9.2, "seed:globex:ai:opening", "100", kind=CreditKind.AI_AGENT, memo="AI credits"),
    Step(30, 10, "seed:globex:springfield:topup", "500", office="springfield", memo="Top-up"),
]


@contextmanager
def clock_at(moment: dt.datetime):
    """Replay a write at a simulated moment (only ever in the past)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def quantity_for(service: str, rng: random.Random) -> Decimal:
    def minutes(mean: float) -> Decimal:
        return max(Decimal("0.1"), Decimal(str(round(min(rng.expovariate(1 / mean), 120), 1))))

    if service == "call_domestic":
        return minutes(6)
    if service == "call_international":
        return minutes(9)
    if service == "toll_free_inbound":
        return minutes(5)
    if service == "sms":
        return Decimal(rng.choice([1, 1, 1, 1, 2, 3]))
    if service == "fax":
        return Decimal(rng.randint(1, 12))
    return Decimal(1)  # mms, ai_agent


def day_events(spec: CompanySpec, day: dt.date) -> list[UsageEvent]:
    """The usage of one company on one day: the same for the same day, whenever it runs."""
    rng = random.Random(f"{spec.slug}:{day.isoformat()}")  # noqa: S311 - demo data
    events = []
    for office in spec.offices:
        low, high = office.per_day
        count = rng.randint(low, high)
        if day.weekday() >= 5:
            count //= 3
        tz = zoneinfo.ZoneInfo(office.tz)
        services, weights = zip(*office.mix.items(), strict=True)
        for n in range(count):
            service = rng.choices(services, weights)[0]
            local = dt.datetime.combine(day, dt.time(8), tzinfo=tz) + dt.timedelta(
                seconds=rng.randint(0, 11 * 3600)
            )
            person, number = rng.choice(office.people)
            events.append(
                UsageEvent(
                    external_id=f"{spec.slug}-{office.slug}-{day:%Y%m%d}-{n:03d}",
                    office=office.slug,
                    service=service,
                    quantity=quantity_for(service, rng),
                    occurred_at=local.astimezone(dt.UTC),
                    user_label=person,
                    phone_number=number,
                    metadata={"direction": rng.choice(["inbound", "outbound", "outbound"])},
                )
            )
    return sorted(events, key=lambda e: (e.occurred_at, e.external_id))


class Command(BaseCommand):
    help = "Create the demo companies, catalog, logins and ~75 days of usage (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            default=None,
            help=(
                f"Set this password on every demo login, new or existing (default: new logins "
                f"get {DEFAULT_PASSWORD}, existing ones keep theirs)."
            ),
        )

    def handle(self, *args, password: str | None, **options):
        started = time.monotonic()
        self.stats = {"charged": 0, "duplicates": 0, "entries": 0}
        self.passwords: dict[str, str] = {}  # username → the password set this run
        catalog = self.catalog()
        care = self.user("care", password, first="Casey", last="Morgan", staff=True)
        care.groups.add(customer_care_group_ensure())
        care = User.objects.get(pk=care.pk)  # fresh permission cache
        logins = [("care", "Customer Care (staff) — /admin/")]
        for spec, steps, pooling_days_ago in (
            (ACME, ACME_STEPS, POOLING_ON_DAYS_AGO),
            (GLOBEX, GLOBEX_STEPS, None),
        ):
            company = self.company(spec, catalog)
            admin = self.user(spec.admin, password)
            membership_grant(user=admin, company=company)
            logins.append((spec.admin, f"Company admin of {company.name}"))
            if spec is ACME:
                for office in spec.offices:
                    username = f"{office.slug}-admin"
                    user = self.user(username, password)
                    membership_grant(
                        user=user, company=company, office=company.offices.get(slug=office.slug)
                    )
                    logins.append((username, f"Office admin of {company.name} — {office.name}"))
            self.replay(spec, company, steps, care, pooling_days_ago)
            if spec is ACME:
                self.credit_request(company)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Usage events charged: {self.stats['charged']}, already charged: "
            f"{self.stats['duplicates']}; credit entries added: {self.stats['entries']} "
            f"({elapsed:.1f}s)."
        )
        self.stdout.write("")
        self.stdout.write(f"{'username':<14} {'password':<16} role")
        for username, role in logins:
            shown = self.passwords.get(username, "(unchanged)")
            self.stdout.write(f"{username:<14} {shown:<16} {role}")

    # Catalog, companies, users -----------------------------------------------------

    def catalog(self) -> dict[str, object]:
        objects: dict[str, object] = {}
        for code, name, standard, ai in PLANS:
            objects[code], _ = Plan.objects.get_or_create(
                code=code,
                defaults={"name": name, "included_standard": standard, "included_ai_agent": ai},
            )
        for code, name, standard, ai in ADDONS:
            objects[code], _ = AddOn.objects.get_or_create(
                code=code,
                defaults={"name": name, "included_standard": standard, "included_ai_agent": ai},
            )
        for code, name, unit, rate, kind in SERVICES:
            Service.objects.get_or_create(
                code=code,
                defaults={"name": name, "unit": unit, "rate": Decimal(rate), "credit_kind": kind},
            )
        return objects

    @transaction.atomic
    def company(self, spec: CompanySpec, catalog) -> Company:
        primary, *others = spec.offices
        company = Company.objects.filter(slug=spec.slug).first()
        if company is None:
            company = company_open(
                name=spec.name,
                slug=spec.slug,
                billing_timezone=spec.tz,
                primary_office_name=primary.name,
                primary_office_slug=primary.slug,
                plan=catalog[primary.plan],
            )
        for office_spec in others:
            if not company.offices.filter(slug=office_spec.slug).exists():
                office_open(
                    company=company,
                    name=office_spec.name,
                    slug=office_spec.slug,
                    plan=catalog[office_spec.plan],
                )
        for office_spec in spec.offices:
            office = company.offices.get(slug=office_spec.slug)
            for code, quantity in office_spec.addons:
                office_addon_set(office=office, addon=catalog[code], quantity=quantity)
        return company

    def user(self, username, password, *, first="", last="", staff=False) -> User:
        """The demo login `username`: created with `password` (or the default one); an
        existing login gets `password` only when one was given."""
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "email": f"{username}@example.com",
                "first_name": first,
                "last_name": last,
                "is_staff": staff,
            },
        )
        if created or password is not None:
            user.set_password(password or DEFAULT_PASSWORD)
            self.passwords[username] = password or DEFAULT_PASSWORD
        user.is_active = True
        user.is_staff = user.is_staff or staff
        user.save()
        return user

    def credit_request(self, company: Company) -> None:
        """One pending credit request of Berlin's admin (SPEC §11), so the balance page
        shows one waiting; a second run leaves it (or its decision) as it is."""
        berlin = company.offices.get(slug="berlin")
        if CreditRequest.objects.filter(company=company, office=berlin).exists():
            return
        credit_request_create(
            company=company,
            office=berlin,
            amount="250",
            note="Trade-fair week: more calls than usual",
            actor=User.objects.get(username="berlin-admin"),
        )

    # History -----------------------------------------------------------------------

    def replay(self, spec, company, steps, care, pooling_days_ago) -> None:
        """Ingest each day's usage, with the credit steps and the pooling toggle at their
        moments, in time order (so every event sees the balances it would have seen)."""
        tz = zoneinfo.ZoneInfo(spec.tz)
        today = timezone.localtime(timezone.now(), tz).date()

        def moment(days_ago: int, hour: float) -> dt.datetime:
            day = today - dt.timedelta(days=days_ago)
            local = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
            return (local + dt.timedelta(hours=hour)).astimezone(dt.UTC)

        actions: list[tuple[dt.datetime, object]] = [(moment(s.days_ago, s.hour), s) for s in steps]
        if pooling_days_ago is not None:
            actions.append((moment(pooling_days_ago, 15), "pooling_on"))
        if spec.slug in CONTROLS:
            actions.append((moment(CONTROLS_DAYS_AGO, 8), "controls"))
        actions.sort(key=lambda a: a[0])
        offices = {o.slug: o for o in Office.objects.filter(company=company)}

        for days_ago in range(DAYS, 0, -1):
            events = day_events(spec, today - dt.timedelta(days=days_ago))
            day_end = moment(days_ago - 1, 0)
            while actions and actions[0][0] < day_end:
                at, action = actions.pop(0)
                before = [e for e in events if e.occurred_at < at]
                events = events[len(before) :]
                self.ingest(company, before)
                with clock_at(at):
                    self.act(company, action, offices, care)
            self.ingest(company, events)

    def ingest(self, company, events) -> None:
        if not events:
            return
        # The feed delivers a few minutes after the last call of the batch.
        with clock_at(events[-1].occurred_at + dt.timedelta(minutes=3)):
            results = usage_ingest(company=company, events=events)
        duplicates = sum(r.duplicate for r in results)
        self.stats["duplicates"] += duplicates
        self.stats["charged"] += len(results) - duplicates

    def act(self, company, action, offices, care) -> None:
        company.refresh_from_db()
        if action == "pooling_on":
            # Once only: a later run must not undo what customer care changed since.
            if PoolingChange.objects.filter(company=company, reason=POOLING_REASON).exists():
                return
            pooling_set(company=company, enabled=True, actor=care, reason=POOLING_REASON)
            return
        if action == "controls":
            self.controls(company, CONTROLS[company.slug], offices, care)
            return
        if LedgerEntry.objects.filter(company=company, idempotency_key=action.key).exists():
            return
        credits_add(
            company=company,
            amount=action.amount,
            actor=care,
            entry_type=action.entry_type,
            kind=action.kind,
            office=offices.get(action.office),
            memo=action.memo,
            idempotency_key=action.key,
        )
        self.stats["entries"] += 1

    def controls(self, company, wanted, offices, care) -> None:
        """The demo's money controls, set once (a later run keeps what was changed)."""
        if ControlChange.objects.filter(company=company).exists():
            return
        if "ai_rule" in wanted:
            threshold, amount, limit = wanted["ai_rule"]
            account = Account.objects.get(company=company, kind=AccountKind.AI_AGENT)
            recharge_rule_set(
                company=company,
                account=account,
                threshold=threshold,
                amount=amount,
                monthly_limit=limit,
                actor=care,
            )
        for slug, cap in wanted.get("caps", {}).items():
            pool_cap_set(company=company, office=offices[slug], cap=cap, actor=care)
        for slug, value in wanted.get("thresholds", {}).items():
            account = Account.objects.get(company=company, office=offices[slug])
            alert_threshold_set(company=company, account=account, value=value, actor=care)
