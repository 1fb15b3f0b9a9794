"""Forms of credit requests; the rules are credits.requests.services'."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings

from core.money import credits_noun
from offices.selectors import PortalScope


class CreditRequestForm(forms.Form):
    office = forms.ModelChoiceField(queryset=None, label="For office", empty_label=None)
    amount = forms.DecimalField(
        label="Credits",
        max_digits=18,
        decimal_places=4,
        widget=forms.NumberInput(attrs={"step": "0.0001", "inputmode": "decimal"}),
    )
    note = forms.CharField(
        label="Note (optional)",
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the credits are needed; your company admins read it.",
    )

    def __init__(self, *args, scope: PortalScope, **kwargs):
        super().__init__(*args, **kwargs)
        minimum = Decimal(settings.CREDITS_PURCHASE_MIN)
        maximum = Decimal(settings.CREDITS_PURCHASE_MAX)
        self.fields["office"].queryset = scope.offices()
        self.fields["office"].label_from_instance = lambda office: office.name
        self.fields[
            "amount"
        ].help_text = f"Between {minimum:,} and {maximum:,} {credits_noun(maximum)}."
        self.fields["amount"].widget.attrs.update(min=str(minimum), max=str(maximum))
        self.minimum, self.maximum = minimum, maximum

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount < self.minimum:
            raise forms.ValidationError(
                f"Request at least {self.minimum:,} {credits_noun(self.minimum)}."
            )
        if amount > self.maximum:
            raise forms.ValidationError(
                f"At most {self.maximum:,} {credits_noun(self.maximum)} at a time."
            )
        return amount


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label="Reason for declining", max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
