"""Only credits writes money: accounts, ledger entries and allowances.

Reads the source of every app outside credits (core, offices, usage, config; not their
migrations) and reports each place that writes those tables or could:

* an ORM write reached from one of the models: `Account.objects.create(...)`,
  `LedgerEntry.objects.filter(...).update(...)`, `bulk_create`, `delete`, …;
* building an instance of one of them (`Allowance(...)`), which exists only to be saved;
* SQL that names their tables, as a string (`"UPDATE credits_account …"`) or through the
  model (`Account._meta.db_table`).

Reading balances goes through credits' selectors and services, so a mention of these
tables in SQL outside credits is reported too. Exit status 1 when anything is found.

    python scripts/check_ownership.py [ROOT]
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

OWNER = "credits"
CHECKED_APPS = ("core", "offices", "usage", "config")
MODELS = {"Account": "credits_account", "LedgerEntry": "credits_ledgerentry"}
MODELS["Allowance"] = "credits_allowance"
WRITES = {
    "create",
    "bulk_create",
    "get_or_create",
    "update_or_create",
    "update",
    "bulk_update",
    "delete",
    "save",
    "raw",
    "select_for_update",
}
TABLE = re.compile(r"\b(" + "|".join(MODELS.values()) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _root_name(node: ast.AST) -> str | None:
    """The name a chain like `Account.objects.filter(x).update` starts from."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            break
    return node.id if isinstance(node, ast.Name) else None


def _model_aliases(tree: ast.AST) -> dict[str, str]:
    """Local names bound to the money models by `from credits.models import …`."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OWNER):
            for alias in node.names:
                if alias.name in MODELS:
                    aliases[alias.asname or alias.name] = alias.name
    return aliases


def findings_in(source: str, path: str = "<source>") -> list[Finding]:
    """Every write (or SQL mention) of the money tables in one module's source."""
    tree = ast.parse(source, filename=path)
    aliases = _model_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in aliases:
                found.append(Finding(path, node.lineno, f"builds a {aliases[func.id]} instance"))
            elif isinstance(func, ast.Attribute) and func.attr in WRITES:
                root = _root_name(func)
                if root in aliases:
                    what = f"{aliases[root]} … .{func.attr}() (an ORM write)"
                    found.append(Finding(path, node.lineno, what))
        elif isinstance(node, ast.Attribute) and node.attr == "db_table":
            root = _root_name(node)
            if root in aliases:
                what = f"{aliases[root]}._meta.db_table in SQL"
                found.append(Finding(path, node.lineno, what))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (match := TABLE.search(node.value))
        ):
            found.append(Finding(path, node.lineno, f"SQL naming {match.group(1)}"))
    return sorted(set(found), key=lambda f: (f.path, f.line, f.what))


def findings(root: Path) -> list[Finding]:
    found = []
    for app in CHECKED_APPS:
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            found += findings_in(path.read_text(), str(path.relative_to(root)))
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    found = findings(root)
    for finding in found:
        print(finding)
    if found:
        print(f"{len(found)} write(s) of credits' tables outside credits.", file=sys.stderr)
        return 1
    checked = ", ".join(CHECKED_APPS)
    print(f"Only credits writes accounts, ledger entries and allowances ({checked} checked).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
