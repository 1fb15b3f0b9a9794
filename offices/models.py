"""Companies (tenants), their offices, the plan catalog and who may see what."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.immutable import ImmutableModel
from core.money import DECIMAL_PLACES, MAX_DIGITS


class CreditKind(models.TextChoices):
    STANDARD = "standard", "Standard"
    AI_AGENT = "ai_agent", "AI agent"


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone: {value!r}.")


def credits_field(**kwargs):
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


# The late-event window (SPEC §10.3): how many days back an event's occurred_at may lie.
LATE_WINDOW_DEFAULT = 35
# A year and a day: older months are the archive's (usage_retention), and an allowance of a
# period that long gone is one nobody reads any more.
LATE_WINDOW_MAX = 366


class Company(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    billing_timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone]
    )
    pooling_enabled = models.BooleanField(
        default=False,
        help_text="Changed only through the pooling toggle (Customer Care), never edited directly.",
    )
    pooling_changed_at = models.DateTimeField(null=True, blank=True)
    late_event_window_days = models.PositiveSmallIntegerField(
        "late-event window (days)",
        default=LATE_WINDOW_DEFAULT,
        validators=[MinValueValidator(1), MaxValueValidator(LATE_WINDOW_MAX)],
        help_text=(
            "Usage events whose occurred_at is more than this many days ago are refused "
            f"(1 to {LATE_WINDOW_MAX}). Changed through offices.services.late_window_set "
            "(audited)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        permissions = [("change_pooling", "Can turn credit pooling on or off")]
        constraints = [
            models.CheckConstraint(
                condition=Q(late_event_window_days__gte=1)
                & Q(late_event_window_days__lte=LATE_WINDOW_MAX),
                name="company_late_window_range",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.billing_timezone)


class Plan(models.Model):
    """A catalog plan; includes credits per billing period for each credit kind."""

    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    included_standard = credits_field(default=0)
    included_ai_agent = credits_field(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(included_standard__gte=0) & Q(included_ai_agent__gte=0),
                name="plan_included_nonnegative",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def included(self, kind: str):
        return self.included_ai_agent if kind == CreditKind.AI_AGENT else self.included_standard


class AddOn(models.Model):
    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    included_standard = credits_field(default=0)
    included_ai_agent = credits_field(default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = "add-on"
        constraints = [
            models.CheckConstraint(
                condition=Q(included_standard__gte=0) & Q(included_ai_agent__gte=0),
                name="addon_included_nonnegative",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def included(self, kind: str):
        return self.included_ai_agent if kind == CreditKind.AI_AGENT else self.included_standard


class Office(models.Model):
    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="offices")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60)
    is_primary = models.BooleanField(default=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="offices")
    addons = models.ManyToManyField(AddOn, through="OfficeAddOn", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company_id", "-is_primary", "name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "slug"], name="office_slug_unique"),
            models.UniqueConstraint(
                fields=["company"],
                condition=Q(is_primary=True),
                name="one_primary_office_per_company",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.company.slug})" if self.company_id else self.name


class OfficeAddOn(models.Model):
    office = models.ForeignKey(Office, on_delete=models.CASCADE, related_name="office_addons")
    addon = models.ForeignKey(AddOn, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = "office add-on"
        constraints = [
            models.UniqueConstraint(fields=["office", "addon"], name="office_addon_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="office_addon_qty_pos"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.addon}"


class Role(models.TextChoices):
    COMPANY_ADMIN = "company_admin", "Company admin"
    OFFICE_ADMIN = "office_admin", "Office admin"


class Membership(models.Model):
    """Grants a portal user a role: a whole company, or one office of it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    office = models.ForeignKey(
        Office, on_delete=models.CASCADE, null=True, blank=True, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="company_admin") & Q(office__isnull=True))
                | (Q(role="office_admin") & Q(office__isnull=False)),
                name="membership_role_matches_office",
            ),
            models.UniqueConstraint(fields=["user", "company", "office"], name="membership_unique"),
            models.UniqueConstraint(
                fields=["user", "company"],
                condition=Q(office__isnull=True),
                name="membership_company_unique",
            ),
        ]

    def __str__(self) -> str:
        target = self.office.name if self.office_id else self.company.name
        return f"{self.user} — {self.get_role_display()} of {target}"

    def clean(self):
        if self.office_id and self.office.company_id != self.company_id:
            raise ValidationError({"office": "The office must belong to the company."})


# Team: invites and the audit of who may see what (SPEC §11) ---------------------------


class InviteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"


class Invite(models.Model):
    """An invitation by e-mail to a company, as company admin or as office admin of some
    of its offices. Its link is signed (offices.team.tokens) over the row's id and
    `nonce`, a random value that a resend replaces and acceptance or revocation clears:
    a link works once, and only the newest one."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField(help_text="Stored lower-cased.")
    role = models.CharField(max_length=20, choices=Role.choices)
    offices = models.ManyToManyField(Office, blank=True, related_name="invites")
    status = models.CharField(
        max_length=10, choices=InviteStatus.choices, default=InviteStatus.PENDING
    )
    nonce = models.CharField(max_length=64, blank=True, default="")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(help_text="When the current link was made (it lasts 72 h).")
    closed_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["company", "email"],
                condition=Q(status="pending"),
                name="invite_one_pending_per_email",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", closed_at__isnull=True)
                | (~Q(status="pending") & Q(closed_at__isnull=False, nonce="")),
                name="invite_closed_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"Invite of {self.email} to {self.company} ({self.status})"


class TeamAction(models.TextChoices):
    INVITED = "invited", "Invited"
    INVITE_RESENT = "invite_resent", "Invite resent"
    INVITE_REVOKED = "invite_revoked", "Invite revoked"
    INVITE_ACCEPTED = "invite_accepted", "Invite accepted"
    ACCESS_CHANGED = "access_changed", "Access changed"
    ACCESS_REMOVED = "access_removed", "Access removed"


class TeamChange(ImmutableModel):
    """Audit of one change of who may see what: who did it, when, to whom, old → new."""

    company = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="team_changes")
    action = models.CharField(max_length=20, choices=TeamAction.choices)
    person = models.CharField(max_length=254, help_text="The e-mail or username concerned.")
    old_value = models.CharField(max_length=1000, blank=True, default="")
    new_value = models.CharField(max_length=1000, blank=True, default="")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.person}"
