from django.core.management.base import BaseCommand, CommandError

from generations.governance import audit, keypool
from generations.models import ApiKey


class Command(BaseCommand):
    help = "Disable a CometAPI key (no new jobs; its running jobs finish), or --enable it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The key's name")
        parser.add_argument("--enable", action="store_true", help="Enable it again instead")

    def handle(self, *args, name: str, enable: bool, **options) -> None:
        key = ApiKey.objects.filter(name=name).first()
        if key is None:
            raise CommandError(f"No API key is called {name!r}.")
        state = "enabled" if enable else "disabled"
        if not keypool.set_active([key], enable):
            self.stdout.write(f"Key {key.name!r} was already {state}.")
            return
        command = "disable_api_key --enable" if enable else "disable_api_key"
        action = audit.KEY_ENABLED if enable else audit.KEY_DISABLED
        audit.record(audit.shell_actor(command), action, key, {})
        self.stdout.write(self.style.SUCCESS(f"Key {key.name!r} {state}."))
