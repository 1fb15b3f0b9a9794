"""The layers and the one owner of money hold, and their checks catch a violation."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _ownership():
    spec = importlib.util.spec_from_file_location(
        "check_ownership", ROOT / "scripts/check_ownership.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


ownership = _ownership()


def test_only_credits_writes_accounts_ledger_entries_and_allowances():
    assert ownership.findings(ROOT) == []


VIOLATIONS = {
    "orm-create": "from credits.models import LedgerEntry\nLedgerEntry.objects.create(amount=1)\n",
    "orm-update": (
        "from credits.models import Account\nAccount.objects.filter(pk=1).update(balance=0)\n"
    ),
    "orm-bulk-update-aliased": (
        "from credits.models import Allowance as A\nA.objects.bulk_update(rows, ['used'])\n"
    ),
    "orm-lock": "from credits.models import Account\nAccount.objects.select_for_update()\n",
    "instance": "from credits.models import Allowance\nrow = Allowance(office_id=1)\nrow.save()\n",
    "sql-string": "cursor.execute('UPDATE credits_account SET balance = 0')\n",
    "sql-copy": 'copy = "COPY credits_ledgerentry (amount) FROM STDIN"\n',
    "sql-via-model": (
        "from credits.models import LedgerEntry\n"
        "sql = f'INSERT INTO {LedgerEntry._meta.db_table} VALUES (1)'\n"
    ),
}


@pytest.mark.parametrize("source", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_a_write_of_money_outside_credits_is_caught(source):
    assert ownership.findings_in(source, "usage/bad.py")


def test_reads_through_credits_and_other_tables_pass():
    source = (
        "from credits.selectors import visible_accounts\n"
        "from usage.models import UsageRecord\n"
        "UsageRecord.objects.bulk_create(rows)\n"
        "cursor.execute('SELECT * FROM usage_usagerecord')\n"
    )
    assert ownership.findings_in(source, "usage/fine.py") == []


def test_the_checker_fails_on_a_tree_with_a_violation(tmp_path):
    # given a copy of the apps with one deliberate violation in usage
    for app in ownership.CHECKED_APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "usage" / "sneaky.py").write_text(VIOLATIONS["orm-update"])
    # when the CI command runs on it
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check_ownership.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # then it fails and names the place
    assert result.returncode == 1
    assert "usage/sneaky.py:2" in result.stdout


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def layered_copy(tmp_path_factory):
    """The apps and the import-linter contract, copied where they can be broken."""
    root = tmp_path_factory.mktemp("layers")
    for app in ownership.CHECKED_APPS + ("credits",):
        shutil.copytree(ROOT / app, root / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_layers_contract_holds(layered_copy):
    result = _lint_imports(layered_copy)
    assert result.returncode == 0, result.stdout
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, upward",
    [
        ("credits/upward.py", "from usage.models import UsageRecord\n"),
        ("offices/upward.py", "import credits.ledger\n"),
        ("core/upward.py", "from offices.models import Company\n"),
    ],
)
def test_an_import_against_the_layers_breaks_the_contract(layered_copy, module, upward):
    # given one deliberate upward import
    path = layered_copy / module
    path.write_text(upward)
    try:
        # when
        result = _lint_imports(layered_copy)
    finally:
        path.unlink()
    # then
    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    assert module.replace("/", ".").removesuffix(".py") in result.stdout
