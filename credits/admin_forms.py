"""Forms of the admin's pooling toggle and Add credits pages. They only check the shape of
the input; the rules live in credits.services, whose errors are mapped back onto fields."""

from django import forms

from core.errors import DomainError, ValidationFailed
from credits.models import EntryType
from offices.models import CreditKind, Office

ON, OFF = "on", "off"


class PoolingReasonForm(forms.Form):
    """Step one: why. `target` pins the state the operator saw, so a toggle by someone
    else in between is noticed instead of silently reversed."""

    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the pooling history and the admin log (e.g. the ticket).",
    )
    target = forms.ChoiceField(choices=[(ON, "on"), (OFF, "off")], widget=forms.HiddenInput)

    @property
    def enabled(self) -> bool:
        return self.cleaned_data["target"] == ON


class PoolingConfirmForm(PoolingReasonForm):
    """Step two: the same data carried in hidden fields, confirmed with one button."""

    reason = forms.CharField(max_length=2000, widget=forms.HiddenInput)


ADD_TYPES = [
    (EntryType.PURCHASE, "Purchase"),
    (EntryType.GRANT, "Grant"),
    (EntryType.ADJUSTMENT, "Adjustment"),
]


class AddCreditsForm(forms.Form):
    entry_type = forms.ChoiceField(label="Type", choices=ADD_TYPES)
    kind = forms.ChoiceField(label="Credit kind", choices=CreditKind.choices)
    office = forms.ModelChoiceField(
        queryset=Office.objects.none(),
        required=False,
        help_text="Whose wallet receives standard credits while pooling is off. "
        "Ignored while pooling is on (the pool receives them) and for AI agent credits "
        "(held by the primary office).",
    )
    amount = forms.DecimalField(
        max_digits=18,
        decimal_places=4,
        help_text="Credits. Purchases and grants are positive; an adjustment may be "
        "negative but never takes a balance below zero.",
    )
    memo = forms.CharField(
        label="Memo",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why: recorded on the ledger entry and in the admin log.",
    )
    idempotency_key = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.company = company
        self.fields["office"].queryset = (
            Office.objects.filter(company=company)
            .select_related("company")
            .order_by("-is_primary", "name")
        )

    def clean_memo(self):
        memo = self.cleaned_data["memo"].strip()
        if not memo:
            raise forms.ValidationError("Say why the credits are added.")
        return memo

    def add_domain_error(self, exc: DomainError) -> None:
        """Show a service's refusal on the field it names, else above the form."""
        placed = False
        if isinstance(exc, ValidationFailed):
            for item in exc.errors:
                field = item.get("field")
                if field in self.fields:
                    self.add_error(field, item.get("message") or exc.message)
                    placed = True
        if not placed:
            self.add_error(None, exc.message)
