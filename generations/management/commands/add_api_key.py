import sys

from django.core.management.base import BaseCommand, CommandError

from generations.governance import audit, keypool
from generations.models import ApiKey


def read_secret() -> str:
    """The key from standard input (hidden at a terminal), never from argv, where it would
    land in the shell's history and the process list."""
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
    return secret


class Command(BaseCommand):
    help = (
        "Add a CometAPI key (an existing name is rotated to the new secret). The secret is "
        "read from standard input, never argv."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="A name admins recognise, e.g. 'team-main'")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=5,
            help="Tasks this key may run upstream at once (default 5)",
        )

    def handle(self, *args, name: str, concurrency: int, **options) -> None:
        secret = read_secret()
        if concurrency < 1:
            raise CommandError("--concurrency must be at least 1.")
        actor = audit.shell_actor("add_api_key")
        key = ApiKey.objects.filter(name=name).first()
        if key is None:
            key = ApiKey.objects.create(name=name, secret=secret, concurrency_limit=concurrency)
            audit.record(actor, audit.KEY_ADDED, key, {"mask": key.hint})
            self.stdout.write(self.style.SUCCESS(f"Added key {key.name!r} ({key.hint})."))
            return
        key = keypool.rotate(key, secret)
        ApiKey.objects.filter(pk=key.pk).update(concurrency_limit=concurrency, is_active=True)
        audit.record(
            actor, audit.KEY_ROTATED, key, {"mask": key.hint, "version": key.secret_version}
        )
        self.stdout.write(self.style.SUCCESS(f"Replaced key {key.name!r} ({key.hint})."))
