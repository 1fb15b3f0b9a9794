import pytest
from django.contrib.auth.models import Permission, User
from django.forms import MultiWidget

from tests.factories import UserFactory


@pytest.fixture
def care_client(client, care):
    client.force_login(care)
    return client


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "pw-Secret-123")


@pytest.fixture
def staff_factory(db):
    """Staff with exactly the named permissions ("app.codename")."""

    def make(username: str, *perms: str) -> User:
        user = UserFactory(username=username, is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return User.objects.get(pk=user.pk)

    return make


def form_data(response) -> dict:
    """The POST body a browser would send back for an admin change form as rendered,
    including the management forms of its inlines."""
    data = {}

    def put(form, prefix_fn=lambda n: n):
        for name, field in form.fields.items():
            value = form[name].value()
            if value is None or value is False:
                continue
            if isinstance(field.widget, MultiWidget):
                for i, part in enumerate(field.widget.decompress(value)):
                    data[f"{prefix_fn(name)}_{i}"] = part
                continue
            data[prefix_fn(name)] = "on" if value is True else value

    put(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        put(formset.management_form, formset.management_form.add_prefix)
        for form in formset.forms:
            put(form, form.add_prefix)
    return data
