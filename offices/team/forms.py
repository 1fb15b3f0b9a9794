"""Forms of the team page and of accepting an invite. They only shape input; the rules
are offices.team.services'."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation

from offices.models import Role
from offices.selectors import PortalScope


class AccessFields(forms.Form):
    role = forms.ChoiceField(
        label="Role", choices=Role.choices, widget=forms.RadioSelect, initial=Role.OFFICE_ADMIN
    )
    offices = forms.ModelMultipleChoiceField(
        queryset=None,
        label="Offices (for an office admin)",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="An office admin sees only these offices; a company admin sees all.",
    )

    def __init__(self, *args, scope: PortalScope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["offices"].queryset = scope.offices()
        self.fields["offices"].label_from_instance = lambda office: office.name

    def clean(self):
        data = super().clean()
        if data.get("role") == Role.OFFICE_ADMIN and not data.get("offices"):
            self.add_error("offices", "Choose at least one office for an office admin.")
        return data


class InviteForm(AccessFields):
    email = forms.EmailField(label="E-mail address", max_length=254)
    field_order = ["email", "role", "offices"]


class AccessForm(AccessFields):
    pass


class InviteAcceptForm(forms.Form):
    username = forms.CharField(
        label="Username",
        max_length=150,
        help_text="You log in with it. Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password2") != data.get("password1"):
            self.add_error("password2", "The two passwords differ.")
        return data
