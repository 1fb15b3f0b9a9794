"""Create the monthly partitions of the usage records ahead of time (PostgreSQL).

    python manage.py usage_partitions                 # 12 months back to 3 ahead
    python manage.py usage_partitions --from 2024-01 --to 2027-12

Safe to run repeatedly (run it monthly, e.g. from cron): existing partitions are left as
they are; rows that the DEFAULT partition holds for a new month are moved into it. A
no-op on SQLite, whose table is not partitioned."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from usage.partitions import (
    default_window,
    is_partitioned,
    month_add,
    partitions_ensure,
    partitions_list,
)


def month_arg(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise CommandError(f"{text!r} is not a month; write YYYY-MM.") from None


class Command(BaseCommand):
    help = "Create the monthly partitions of usage_usagerecord ahead of time (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", type=month_arg, help="first month, YYYY-MM")
        parser.add_argument("--to", dest="end", type=month_arg, help="last month, YYYY-MM")

    def handle(self, *args, start=None, end=None, **options):
        if not is_partitioned():
            self.stdout.write("usage_usagerecord is not partitioned here (not PostgreSQL).")
            return
        default_start, default_end = default_window()
        start = start or default_start
        end = default_end if end is None else month_add(end, 1)
        if end <= start:
            raise CommandError("--to lies before --from.")
        created = partitions_ensure(start, end)
        for name in created:
            self.stdout.write(f"created {name}")
        months = [p for p in partitions_list() if p.month is not None]
        self.stdout.write(
            f"{len(created)} partition(s) created; {len(months)} monthly partitions "
            f"({months[0].month:%Y-%m} … {months[-1].month:%Y-%m}) and DEFAULT."
            if months
            else f"{len(created)} partition(s) created."
        )
