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
    # Low-balance warning (SPEC §8.2): the override set for this balance, and the
    # threshold in force (override, else the company default; none while the balance
    # funds nothing). The flags say an alert of each kind is open: the ledger compares
    # them with the new balance on every change without reading the alerts.
    threshold_override = credits_field(null=True, blank=True)
    alert_threshold = credits_field(null=True, blank=True)
    # Database defaults too: hand-written SQL writers (the bench's raw baseline, COPY
    # loads) insert rows without naming these columns.
    low_balance_alert = models.BooleanField(default=False, db_default=False)
    uncovered_alert = models.BooleanField(default=False, db_default=False)
    # Whether this balance has an auto-recharge rule (SPEC §8.1), set and cleared by the
    # rule services under this row's lock: the charging session reads the rules only
    # when an account it locked says so (a locked row is always its newest version).
    has_recharge_rule = models.BooleanField(default=False, db_default=False)
    # Pool only (SPEC §8.3): the latest billing period a batch drew on the pool for (a
    # pool-cap alert of an earlier period resolves: its period is over), and how many
    # pool-cap alerts are open (the banner reads them only when there are some). Both
    # are kept under this row's lock (or the company row's exclusive lock).
    latest_period = models.DateField(null=True, blank=True)
    pool_cap_alerts = models.PositiveIntegerField(default=0, db_default=0)

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
    # The office's pool cap in force (SPEC §8.3; standard rows), and its pool draws when
    # that cap was set: a cap set below what was already drawn stops further draws.
    pool_cap = credits_field(null=True, blank=True)
    pool_drawn_at_cap = credits_field(default=0, db_default=0)
    # The office was alerted that its pool cap left usage uncovered in this period, and
    # the cap has given it no room since (a pool-cap alert, open while this period is not
    # over). Kept under this row's lock: the charging session reads it for free.
    pool_cap_alert = models.BooleanField(default=False, db_default=False)

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


# Money controls (SPEC §8) ---------------------------------------------------------------


class CompanyControls(models.Model):
    """A company's low-balance settings: the default warning threshold of its balances and
    the webhook that alerts are posted to (the secret signs them; shown once)."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="controls")
    alert_threshold = credits_field(null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    webhook_secret = models.CharField(max_length=100, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "company controls"
        constraints = [
            models.CheckConstraint(
                condition=Q(alert_threshold__isnull=True) | Q(alert_threshold__gt=0),
                name="controls_threshold_positive",
            )
        ]

    def __str__(self) -> str:
        return f"Money controls of {self.company}"


class RechargeRule(models.Model):
    """Auto-recharge of one funding balance (SPEC §8.1): just before a usage draw would
    leave it below `threshold`, add `amount`, at most `monthly_limit` times a period.
    `period`/`recharges` count this period's recharges (kept under the account's lock)."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="recharge_rules")
    account = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="recharge_rule")
    threshold = credits_field()
    amount = credits_field()
    monthly_limit = models.PositiveSmallIntegerField(default=3)
    period = models.DateField(null=True, blank=True)
    recharges = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company_id", "account_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gt=0) & Q(amount__gt=0) & Q(monthly_limit__gt=0),
                name="recharge_rule_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"Auto-recharge #{self.pk} of {self.account}"


class PoolCap(models.Model):
    """The monthly cap on what one office may draw from the company pool (SPEC §8.3).
    The cap in force is copied onto the office's standard allowance rows, which the
    charging session locks anyway."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="pool_caps")
    office = models.OneToOneField(Office, on_delete=models.PROTECT, related_name="pool_cap")
    cap = credits_field()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["company_id", "office_id"]
        constraints = [
            models.CheckConstraint(condition=Q(cap__gte=0), name="pool_cap_nonneg"),
        ]

    def __str__(self) -> str:
        return f"Pool cap of {self.office}: {self.cap}"


class AlertKind(models.TextChoices):
    LOW_BALANCE = "low_balance", "Low balance"
    UNCOVERED = "uncovered", "Usage uncovered"
    POOL_CAP = "pool_cap", "Pool cap reached"


class Alert(models.Model):
    """A low balance (below its warning threshold), an empty balance that left usage
    uncovered (SPEC §8.2), or an office whose pool cap left usage uncovered while the pool
    still held credits (§8.3: `account` is the pool, `office` and `period` say whose cap
    and when, `threshold` is the cap). Opened and resolved in the transaction of the
    change that causes it."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="alerts")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    office = models.ForeignKey(
        Office, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    period = models.DateField(null=True, blank=True)
    threshold = credits_field(null=True, blank=True)
    balance = credits_field(help_text="The balance when the alert opened.")
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_balance = credits_field(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind"],
                condition=Q(resolved_at__isnull=True) & ~Q(kind="pool_cap"),
                name="alert_one_open_per_account_kind",
            ),
            models.UniqueConstraint(
                fields=["office", "period"],
                condition=Q(resolved_at__isnull=True) & Q(kind="pool_cap"),
                name="alert_one_open_pool_cap_per_office_period",
            ),
            models.CheckConstraint(
                condition=(Q(kind="pool_cap") & Q(office__isnull=False) & Q(period__isnull=False))
                | (~Q(kind="pool_cap") & Q(office__isnull=True) & Q(period__isnull=True)),
                name="alert_office_period_only_for_pool_cap",
            ),
        ]
        indexes = [models.Index(fields=["company", "-opened_at"], name="alert_company_time")]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        if self.kind == AlertKind.POOL_CAP:
            return f"{self.get_kind_display()} by {self.office} in {self.period:%Y-%m} ({state})"
        return f"{self.get_kind_display()} of {self.account} ({state})"


class DeliveryStatus(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookAttempt(models.Model):
    """One try at posting an alert to the company's webhook, with what came back."""

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="webhook_attempts")
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="webhook_attempts")
    attempt = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    next_try_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Webhook attempt {self.attempt} of alert {self.alert_id}: {self.status}"


class ControlChange(ImmutableModel):
    """Audit of one money-control change: who, when, what, old value → new value."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="control_changes")
    setting = models.CharField(max_length=200)
    old_value = models.CharField(max_length=600, blank=True, default="")
    new_value = models.CharField(max_length=600, blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.setting}: {self.old_value or '—'} → {self.new_value or '—'}"


class CreditRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class CreditRequest(models.Model):
    """An office admin's request for credits for their office (SPEC §11), decided once by
    a company admin: approved (the purchase it made is `purchase`) or declined with a
    reason. The row is its own audit: who asked, who decided, when, pending → decision."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="credit_requests")
    office = models.ForeignKey(Office, on_delete=models.PROTECT, related_name="credit_requests")
    amount = credits_field()
    note = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(
        max_length=10, choices=CreditRequestStatus.choices, default=CreditRequestStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_requests"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_requests_decided",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.CharField(max_length=500, blank=True, default="")
    purchase = models.OneToOneField(
        LedgerEntry,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_request",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_request_amount_pos"),
            models.CheckConstraint(
                condition=Q(
                    status="pending",
                    decided_at__isnull=True,
                    decided_by__isnull=True,
                    purchase__isnull=True,
                )
                | Q(status="approved", decided_at__isnull=False, purchase__isnull=False)
                | (
                    Q(status="declined", decided_at__isnull=False, purchase__isnull=True)
                    & ~Q(decline_reason="")
                ),
                name="credit_request_decision_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["company", "status", "-created_at"], name="credit_request_list"),
        ]

    def __str__(self) -> str:
        return f"Request of {self.amount} credits for {self.office} ({self.status})"
