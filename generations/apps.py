from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the cluster start-up kick)
