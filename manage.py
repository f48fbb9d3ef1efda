#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting that is missing or wrong: one sentence naming it, not a traceback.
        sys.exit(f"Kling Studio can't start. ImproperlyConfigured: {exc}")


if __name__ == "__main__":
    main()
