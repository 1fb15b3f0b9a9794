"""Create an API key for a company and print it once; only its digest is stored."""

from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from offices.models import Company
from usage.api_auth import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a company. The key is printed once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True, help="Company slug.")
        parser.add_argument("--name", default="API key", help="What the key is for.")

    def handle(self, *args, company, name, **options):
        try:
            target = Company.objects.get(slug=company)
        except Company.DoesNotExist:
            raise CommandError(f"No company with slug {company!r}.") from None
        try:
            api_key, key = api_key_create(company=target, name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Created API key {api_key.display_prefix} ({api_key.name}) for {target.name}. "
            "Store it now: it is not shown again."
        )
        self.stdout.write(key)
