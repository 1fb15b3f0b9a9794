"""Balances, the ledger that explains them, per-period allowances, pooling audit."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.immutable import ImmutableModel
from offices.models import Company, CreditKind, Office, credits_field


class AccountKind(models.TextChoices):
    POOL = "pool", "Company pool"
    WALLET = "wallet", "Office wallet"
    AI_AGENT = "ai_agent", "AI agent credits"


class Account(models.Model):
    """A balance: the company pool, an office wallet, or the company's AI agent credits
    (held by the primary office). The balance only changes with a ledger entry."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="accounts")
    office = models.ForeignKey(
        Office, on_delete=models.PROTECT, null=True, blank=True, related_name="accounts"
    )
    kind = models.CharField(max_length=10, choices=AccountKind.choices)
    balance = credits_field(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company_id", "kind", "office_id"]
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="account_balance_nonneg"),
            models.CheckConstraint(
                condition=(Q(kind="wallet") & Q(office__isnull=False))
                | (~Q(kind="wallet") & Q(office__isnull=True)),
                name="account_office_only_for_wallet",
            ),
            models.UniqueConstraint(
                fields=["company", "kind"],
                condition=~Q(kind="wallet"),
                name="one_pool_and_ai_account_per_company",
            ),
            models.UniqueConstraint(
                fields=["office"], condition=Q(kind="wallet"), name="one_wallet_per_office"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == AccountKind.WALLET:
            return f"{self.office.name} wallet"
        return f"{self.company.name} — {self.get_kind_display()}"

    @property
    def credit_kind(self) -> str:
        return CreditKind.AI_AGENT if self.kind == AccountKind.AI_AGENT else CreditKind.STANDARD


class EntryType(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    GRANT = "grant", "Grant"
    USAGE = "usage", "Usage"
    POOLING_TRANSFER = "pooling_transfer", "Pooling transfer"
    ADJUSTMENT = "adjustment", "Adjustment"
    AUTO_RECHARGE = "auto_recharge", "Auto-recharge"


class LedgerEntry(ImmutableModel):
    """One change of one balance. Never updated or deleted: corrections are new entries.

    Usage is written as one entry per account per ingested batch (`usage_batch`); the
    per-event detail lives on the usage records of that batch."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="ledger_entries")
    entry_type = models.CharField(max_length=20, choices=EntryType.choices)
    amount = credits_field()
    balance_after = credits_field()
    reference = models.CharField(max_length=200, blank=True, default="")
    idempotency_key = models.CharField(
        max_length=64, blank=True, default="", help_text="Makes a double submit count once."
    )
    usage_batch = models.UUIDField(null=True, blank=True, db_index=True)
    pooling_change = models.ForeignKey(
        "PoolingChange", on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    memo = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["company", "-created_at"], name="ledger_company_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="ledger_balance_after_nonneg"
            ),
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_nonzero"),
            models.UniqueConstraint(
                fields=["company", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="ledger_idempotency_key_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_entry_type_display()} {self.amount:+} → {self.balance_after}"


class Allowance(models.Model):
    """Included credits of one office, credit kind and billing period, with what was used.

    The allocation service keeps the per-period rollups (what pool/wallet/AI credits and
    uncovered overage this office's usage drew) on the same locked row, so balance pages
    never scan history."""

    office = models.ForeignKey(Office, on_delete=models.PROTECT, related_name="allowances")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="allowances")
    kind = models.CharField(max_length=10, choices=CreditKind.choices)
    period = models.DateField(help_text="First day of the billing month (company time zone).")
    included = credits_field()
    used = credits_field(default=0)
    # Rollups of the office's usage in this period (not balances; history is the truth).
    cost_total = credits_field(default=0)
    pool_drawn = credits_field(default=0)
    wallet_drawn = credits_field(default=0)
    ai_drawn = credits_field(default=0)
    uncovered = credits_field(default=0)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-period", "office_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["office", "kind", "period"], name="allowance_office_kind_period"
            ),
            models.CheckConstraint(
                condition=Q(used__gte=0) & Q(used__lte=F("included")) & Q(included__gte=0),
                name="allowance_used_within_included",
            ),
            models.CheckConstraint(
                condition=Q(pool_drawn__gte=0)
                & Q(wallet_drawn__gte=0)
                & Q(ai_drawn__gte=0)
                & Q(uncovered__gte=0)
                & Q(cost_total__gte=0),
                name="allowance_rollups_nonneg",
            ),
        ]
        indexes = [models.Index(fields=["company", "period"], name="allowance_company_period")]

    def __str__(self) -> str:
        return f"{self.office} {self.kind} {self.period:%Y-%m}: {self.used}/{self.included}"

    @property
    def remaining(self):
        return self.included - self.used


class PoolingChange(ImmutableModel):
    """Audit record of one pooling toggle: who, when, why, and what moved."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="pooling_changes")
    enabled = models.BooleanField(help_text="The pooling state after the change.")
    reason = models.TextField()
    amount_moved = credits_field(default=0)
    moves = models.JSONField(default=list, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"Pooling {state} for {self.company} at {self.created_at:%Y-%m-%d %H:%M}"
