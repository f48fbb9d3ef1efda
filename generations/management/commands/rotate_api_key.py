from django.core.management.base import BaseCommand, CommandError

from generations.governance import audit, keypool
from generations.management.commands.add_api_key import read_secret
from generations.models import ApiKey


class Command(BaseCommand):
    help = (
        "Rotate a CometAPI key: the new secret (standard input) is used for every new job at "
        "once; jobs already running finish with the old one, which is then forgotten."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The key's name")

    def handle(self, *args, name: str, **options) -> None:
        key = ApiKey.objects.filter(name=name).first()
        if key is None:
            raise CommandError(f"No API key is called {name!r} (add it with add_api_key).")
        secret = read_secret()
        if secret == key.secret:
            raise CommandError("That is the key's current secret: nothing to rotate.")
        key = keypool.rotate(key, secret)
        audit.record(
            audit.shell_actor("rotate_api_key"),
            audit.KEY_ROTATED,
            key,
            {"mask": key.hint, "version": key.secret_version},
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Rotated key {key.name!r} to {key.hint} (version {key.secret_version})."
            )
        )
