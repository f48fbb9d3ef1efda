import sys

from django.core.management.base import BaseCommand, CommandError

from generations.models import ApiKey


class Command(BaseCommand):
    help = "Add (or replace) a CometAPI key. The secret is read from standard input, never argv."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A name admins recognise, e.g. 'team-main'")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=5,
            help="Tasks this key may run upstream at once (default 5)",
        )

    def handle(self, *args, name: str, concurrency: int, **options) -> None:
        if sys.stdin.isatty():
            import getpass

            secret = getpass.getpass("CometAPI key (input hidden): ")
        else:
            secret = sys.stdin.readline()
        secret = secret.strip()
        if not secret:
            raise CommandError("No key given on standard input.")
        if any(c.isspace() for c in secret) or len(secret) > 500:
            raise CommandError("That does not look like an API key (spaces or too long).")
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        key, created = ApiKey.objects.update_or_create(
            name=name,
            defaults={
                "secret": secret,
                "is_active": True,
                "is_healthy": True,
                "last_error": "",
                "unhealthy_since": None,
                "concurrency_limit": concurrency,
            },
        )
        verb = "Added" if created else "Replaced"
        self.stdout.write(self.style.SUCCESS(f"{verb} key {key.name!r} ({key.hint})."))
