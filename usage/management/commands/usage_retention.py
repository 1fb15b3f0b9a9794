"""Detach and archive the usage records of old months (PostgreSQL).

    python manage.py usage_retention --before 2025-01                     # dry run
    python manage.py usage_retention --before 2025-01 --apply [--archive-dir DIR]

Each monthly partition wholly before --before is detached from usage_usagerecord and
moved to the schema usage_archive (and, with --archive-dir, also written there as
gzip-compressed COPY text). The live table, its indexes and the history pages lose those
months; check_ledger, the statements (allowance and day rollups) and the guard of §6.4
keep them (docs/scaling.md, "Retention"). Without --apply it only says what it would do.
Only closed months: --before may be at most the previous month, so every billing period
an archived row can belong to has ended."""

from django.core.management.base import BaseCommand, CommandError

from usage.management.commands.usage_partitions import month_arg
from usage.partitions import (
    ARCHIVE_SCHEMA,
    default_rows_before,
    is_partitioned,
    month_add,
    month_start,
    partitions_archive,
    partitions_to_archive,
)


class Command(BaseCommand):
    help = "Detach the usage partitions of months before --before and archive them."

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, type=month_arg, help="YYYY-MM")
        parser.add_argument("--archive-dir", help="also write each partition here (.tsv.gz)")
        parser.add_argument(
            "--apply", action="store_true", help="do it (without: a dry run that only reports)"
        )

    def handle(self, *args, before, archive_dir=None, apply=False, **options):
        from django.utils import timezone

        if not is_partitioned():
            raise CommandError("usage_usagerecord is not partitioned here (not PostgreSQL).")
        latest = month_add(month_start(timezone.now().date()), -1)
        if before > latest:
            raise CommandError(
                f"--before {before:%Y-%m} would archive a month that is not closed: "
                f"the latest allowed is {latest:%Y-%m} (months before the previous one)."
            )
        partitions = partitions_to_archive(before)
        stray = default_rows_before(before)
        if not partitions:
            self.stdout.write(f"Nothing to archive: no partition lies before {before:%Y-%m}.")
        verb = "archived" if apply else "would archive"
        if not apply:
            for p in partitions:
                self.stdout.write(f"{verb} {p.name} ({p.rows:,} rows)")
        else:
            for done in partitions_archive(before, archive_dir=archive_dir):
                where = f"{ARCHIVE_SCHEMA}.{done.name}"
                if done.file:
                    where += f" and {done.file}"
                self.stdout.write(f"{verb} {done.name} ({done.rows:,} rows) → {where}")
        if stray:
            self.stdout.write(
                f"{stray:,} row(s) before {before:%Y-%m} are in the DEFAULT partition: they "
                "stay live (a month never archived gets a partition from usage_partitions "
                "--from, which moves them there)."
            )
        if partitions and not apply:
            self.stdout.write("Dry run: nothing changed. Add --apply to do it.")
