from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (signals connects the cluster start-up kick)
        from .governance import audit

        audit.connect_signals()
