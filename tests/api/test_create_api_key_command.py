from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.api.conftest import ApiClient
from usage.models import ApiKey


def test_the_command_prints_the_key_once_on_its_last_line_and_the_key_works(company):
    out = StringIO()
    call_command("create_api_key", "--company", "acme", "--name", "reconciliation", stdout=out)
    lines = out.getvalue().strip().splitlines()
    key = lines[-1]
    stored = ApiKey.objects.get()
    assert (stored.company, stored.name) == (company, "reconciliation")
    assert key.startswith(f"ucp_{stored.prefix}.")
    assert key not in "\n".join(lines[:-1])  # printed once, only as the last line
    response = ApiClient(key).get("/api/v1/balance")
    assert response.status_code == 200
    assert response.json()["company"] == "acme"


def test_the_command_refuses_an_unknown_company(company):
    with pytest.raises(CommandError, match="No company with slug 'nope'"):
        call_command("create_api_key", "--company", "nope", stdout=StringIO())
    assert not ApiKey.objects.exists()


def test_each_run_makes_a_new_independent_key(company):
    keys = set()
    for _ in range(2):
        out = StringIO()
        call_command("create_api_key", "--company", "acme", stdout=out)
        keys.add(out.getvalue().strip().splitlines()[-1])
    assert len(keys) == 2
    assert ApiKey.objects.count() == 2
