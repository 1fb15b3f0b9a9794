"""The portal's add-credits form. It only validates input; the purchase itself is
credits.services.credits_purchase."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django import forms
from django.conf import settings

from core.money import credits_noun
from offices.selectors import PortalScope

TOKEN = re.compile(r"[0-9a-f]{32}")


def new_token() -> str:
    return uuid.uuid4().hex


class AddCreditsForm(forms.Form):
    amount = forms.DecimalField(
        label="Credits to add",
        max_digits=18,
        decimal_places=4,
        widget=forms.NumberInput(attrs={"step": "0.0001", "inputmode": "decimal"}),
    )
    office = forms.ModelChoiceField(
        queryset=None,
        label="Office wallet",
        required=False,
        empty_label="Choose an office",
    )
    reference = forms.CharField(
        label="Reference (optional)",
        max_length=200,
        required=False,
        help_text="An order or invoice number, shown in the balance activity.",
    )
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, scope: PortalScope, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = scope
        self.minimum = Decimal(settings.CREDITS_PURCHASE_MIN)
        self.maximum = Decimal(settings.CREDITS_PURCHASE_MAX)
        self.fields["amount"].min_value = self.minimum
        self.fields["amount"].max_value = self.maximum
        self.fields[
            "amount"
        ].help_text = f"Between {self.minimum:,} and {self.maximum:,} {credits_noun(self.maximum)}."
        self.fields["amount"].widget.attrs.update(min=str(self.minimum), max=str(self.maximum))
        self.fields["office"].queryset = scope.offices()
        self.fields["office"].label_from_instance = lambda office: office.name
        if self.pooling_on:
            # Standard credits go to the shared pool while pooling is on.
            del self.fields["office"]
        else:
            self.fields["office"].required = True
            offices = list(self.fields["office"].queryset[:2])
            if len(offices) == 1:
                self.fields["office"].initial = offices[0].pk

    @property
    def pooling_on(self) -> bool:
        return self.scope.company.pooling_enabled

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount < self.minimum:
            raise forms.ValidationError(
                f"Add at least {self.minimum:,} {credits_noun(self.minimum)}."
            )
        if amount > self.maximum:
            raise forms.ValidationError(
                f"At most {self.maximum:,} {credits_noun(self.maximum)} at a time."
            )
        return amount

    def clean_token(self):
        token = self.cleaned_data["token"]
        if not TOKEN.fullmatch(token):
            raise forms.ValidationError("This form has expired; please start again.")
        return token

    @property
    def destination(self) -> str:
        if self.pooling_on:
            return "the shared company pool"
        office = self.cleaned_data.get("office")
        return f"the {office.name} wallet" if office else "an office wallet"
