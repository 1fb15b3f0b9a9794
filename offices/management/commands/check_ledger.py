"""`manage.py check_ledger [--company SLUG ...]`: verify SPEC §6 on the live database."""

from django.core.management.base import BaseCommand, CommandError

from core.checks import ledger_check
from offices.models import Company


class Command(BaseCommand):
    help = (
        "Verify the ledger invariants (SPEC §6): balances match their ledger, usage splits "
        "add up, allowances and rollups match the records, pooling conserved credits, "
        "append-only triggers are in place. Exits 1 when anything is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--company",
            action="append",
            metavar="SLUG",
            help="Check only this company (repeatable). Default: every company.",
        )

    def handle(self, *args, **options):
        company_ids = None
        if options["company"]:
            slugs = set(options["company"])
            found = dict(Company.objects.filter(slug__in=slugs).values_list("slug", "id"))
            missing = sorted(slugs - found.keys())
            if missing:
                raise CommandError(f"No company with slug {', '.join(map(repr, missing))}.")
            company_ids = list(found.values())

        report = ledger_check(company_ids)
        checked = ", ".join(f"{n:,} {what}" for what, n in report.counts.items())
        self.stdout.write(f"Checked {checked}.")
        if report.violations:
            for line in report.violations:
                self.stderr.write(f"  {line}")
            raise CommandError(f"{len(report.violations)} ledger invariant violation(s) found.")
        self.stdout.write(self.style.SUCCESS("All ledger invariants hold."))
