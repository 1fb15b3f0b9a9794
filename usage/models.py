"""What generates usage (services and their rates) and the usage records it produced."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value

from core.immutable import ImmutableModel
from offices.models import Company, CreditKind, Office, credits_field


class Unit(models.TextChoices):
    MINUTE = "minute", "minute"
    MESSAGE = "message", "message"
    PAGE = "page", "page"
    CONVERSATION = "conversation", "conversation"


class Service(models.Model):
    """A billable service. The rate is data: editing it never rewrites past records."""

    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=20, choices=Unit.choices)
    rate = models.DecimalField(max_digits=12, decimal_places=4, help_text="Credits per unit.")
    credit_kind = models.CharField(
        max_length=10, choices=CreditKind.choices, default=CreditKind.STANDARD
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(rate__gte=0), name="service_rate_nonneg")]

    def __str__(self) -> str:
        return self.name


PARTS_SUM = F("allowance_part") + F("pool_part") + F("wallet_part") + F("ai_part") + F("uncovered")
HALF_UNIT = Value(Decimal("0.00005"), output_field=models.DecimalField())


class UsageRecord(ImmutableModel):
    """One charged usage event and exactly how its cost was funded (SPEC §3)."""

    # No single-column indexes on company/office: the composite indexes below start with
    # them, and every index is paid for on each ingested event. No foreign-key constraints
    # on company, office, service and funding account (db_constraint=False): the write path
    # writes only ids it has just read in the same transaction (the company row share-locked,
    # the office and service validated, the funding account locked FOR UPDATE), and each
    # constraint cost a lookup per row and key on every insert (docs/scaling.md, "The hot
    # table's indexes and keys"). PROTECT still refuses deleting a referenced row in Django.
    company = models.ForeignKey(
        Company,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    office = models.ForeignKey(
        Office,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    # Not indexed: only a service's deletion would read it (services are deactivated,
    # never deleted); history's service filter walks the company/office time indexes.
    service = models.ForeignKey(
        Service,
        on_delete=models.PROTECT,
        related_name="usage_records",
        db_index=False,
        db_constraint=False,
    )
    external_id = models.CharField(max_length=200)
    credit_kind = models.CharField(max_length=10, choices=CreditKind.choices)
    quantity = credits_field()
    rate = models.DecimalField(max_digits=12, decimal_places=4)
    cost = credits_field()
    occurred_at = models.DateTimeField()
    period = models.DateField()
    allowance_part = credits_field(default=0)
    pool_part = credits_field(default=0)
    wallet_part = credits_field(default=0)
    ai_part = credits_field(default=0)
    uncovered = credits_field(default=0)
    pooling_on = models.BooleanField()
    # Not indexed: every ingested event would pay for an index that only an account's
    # deletion would read (accounts are never deleted; PROTECT refuses it anyway).
    funding_account = models.ForeignKey(
        "credits.Account",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    funding_balance_after = credits_field(null=True, blank=True)
    user_label = models.CharField(max_length=200, blank=True, default="")
    phone_number = models.CharField(max_length=40, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    batch = models.UUIDField(db_index=True)
    # Set only for usage entered by a person; indexed by a partial index (below), so
    # events from the API (no user) pay nothing for it.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        # "An id is charged once per company" (SPEC §6.4) is kept by UsageKey: on
        # PostgreSQL this table is partitioned by month on occurred_at (usage/partitions.py),
        # and a unique index of a partitioned table must contain the partition key.
        constraints = [
            models.CheckConstraint(
                condition=Q(allowance_part__gte=0)
                & Q(pool_part__gte=0)
                & Q(wallet_part__gte=0)
                & Q(ai_part__gte=0)
                & Q(uncovered__gte=0)
                & Q(quantity__gt=0),
                name="usage_parts_nonneg",
            ),
            # Within half a unit of the 4th place: exact on PostgreSQL's numeric, and it
            # survives SQLite, which stores decimals as floats (0.1 + 0.2 != 0.3 there).
            models.CheckConstraint(
                condition=Q(cost__gt=PARTS_SUM - HALF_UNIT) & Q(cost__lt=PARTS_SUM + HALF_UNIT),
                name="usage_parts_sum_to_cost",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "-occurred_at", "-id"], name="usage_company_time"),
            models.Index(fields=["office", "-occurred_at", "-id"], name="usage_office_time"),
            models.Index(fields=["company", "period"], name="usage_company_period"),
            models.Index(
                fields=["created_by"],
                condition=Q(created_by__isnull=False),
                name="usage_created_by",
            ),
            # History filters whose matches can be rare (a few rows in a million): without
            # these, "newest first" walks the whole company (EXPLAIN: 270 ms at 1M rows).
            # Partial, so an event pays only for the parts it actually has.
            *[
                models.Index(
                    fields=["company", "-occurred_at", "-id"],
                    condition=Q(**{f"{part}__gt": 0}),
                    name=f"usage_company_time_{short}",
                )
                for part, short in (
                    ("pool_part", "pool"),
                    ("wallet_part", "wallet"),
                    ("ai_part", "ai"),
                    ("uncovered", "uncov"),
                )
            ],
            models.Index(fields=["company", "cost"], name="usage_company_cost"),
            # Text search (usage/search.py): the skip scan over a company's distinct user
            # labels, and index-only totals of the records of the matching labels, also
            # combined with any other history filter. On PostgreSQL the phone numbers
            # have one trigram index besides (`usage_phone_digits_trgm`, migrations 0009, 0011).
            models.Index(
                fields=["company", "user_label", "occurred_at"],
                include=[
                    "office",
                    "service",
                    "credit_kind",
                    "cost",
                    "allowance_part",
                    "pool_part",
                    "wallet_part",
                    "ai_part",
                    "uncovered",
                ],
                name="usage_company_label",
            ),
            # On PostgreSQL also (migration 0010): a BRIN index on created_at, for the
            # what-if replay (a period's records by the moment they were charged).
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.quantity} × {self.service.name} = {self.cost} credits"


class UsageKey(models.Model):
    """The guard of "an external id is charged once per company" (SPEC §6.4): one row per
    usage record, written in the charging transaction with it. Unpartitioned (the usage
    records are partitioned by month on PostgreSQL, and a unique index there would have to
    include the month); also where a re-sent id finds its record (record_id, occurred_at:
    the record's primary key on PostgreSQL)."""

    # Not a constraint: written with the record, from the company row share-locked in the
    # same transaction (see UsageRecord.company).
    company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    external_id = models.CharField(max_length=200)
    record_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["company", "external_id"], name="usage_key_once_per_company"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company_id} {self.external_id} → {self.record_id}"


# Bits of UsageDay.funded: which parts of a record's split are non-zero.
FUNDED_BITS = {
    "allowance_part": 1,
    "pool_part": 2,
    "wallet_part": 4,
    "ai_part": 8,
    "uncovered": 16,
}


def funded_mask(record) -> int:
    """The UsageDay.funded bits of one usage record (parts greater than zero)."""
    return sum(bit for part, bit in FUNDED_BITS.items() if getattr(record, part) > 0)


class UsageDay(models.Model):
    """Totals of the usage records of one office, service, local day (company time zone
    `tz` when charged) and funding split (`funded`: the bits of FUNDED_BITS of the parts
    that are non-zero). Kept by the allocation service in the charging transaction, under
    the lock of the office's allowance row; `check_ledger` verifies it against the records.

    The usage history reads its totals here when every filter is one of office, service,
    credit kind, funded by and whole-day dates, instead of summing up to millions of
    records."""

    # Indexed by the composite indexes below (company) and the unique key (office).
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="+", db_index=False)
    office = models.ForeignKey(Office, on_delete=models.PROTECT, related_name="+", db_index=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+", db_index=False)
    credit_kind = models.CharField(max_length=10, choices=CreditKind.choices)
    day = models.DateField()
    tz = models.CharField(max_length=64)
    funded = models.PositiveSmallIntegerField()
    events = models.PositiveIntegerField(default=0)
    cost = credits_field(default=0)
    allowance_part = credits_field(default=0)
    pool_part = credits_field(default=0)
    wallet_part = credits_field(default=0)
    ai_part = credits_field(default=0)
    uncovered = credits_field(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["office", "service", "credit_kind", "day", "tz", "funded"],
                name="usage_day_key",
            ),
        ]
        indexes = [
            # Date ranges (one time zone), and MIN/MAX(tz) of a company in two probes.
            models.Index(fields=["company", "tz", "day"], name="usage_day_company_tz_day"),
            # "Funded by" and "service": the company's rows of those splits or that
            # service, summed from the table (a parallel scan of every rollup row of the
            # company was 60–125 ms at 1M records). No sums in these indexes: every batch
            # adds to a few hundred rollup rows, and an update that changes no indexed
            # column stays on its page without new index entries (a HOT update; the table
            # leaves room for them, migration usage 0012), which takes a third off the
            # rollup statement the charging transaction runs under the pool's lock.
            models.Index(fields=["company", "funded"], name="usage_day_company_funded"),
            models.Index(fields=["company", "service"], name="usage_day_company_service"),
        ]

    def __str__(self) -> str:
        return f"{self.office_id} {self.service_id} {self.day} ({self.tz}) {self.funded}"


class ApiKey(models.Model):
    """A company's key to the JSON API. Only a SHA-256 digest of the key is stored; the
    key itself is shown once, when it is created, and afterwards only by its prefix."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What the key is for, e.g. “billing sync”.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["company_id", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"ucp_{self.prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
