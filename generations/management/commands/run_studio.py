"""`make run` / `make demo`: the web server and the django-q2 cluster in one foreground command.

The web server is Django's development server in debug mode and gunicorn (configured by
gunicorn.conf.py) with DJANGO_DEBUG=0, after collectstatic, which WhiteNoise's manifest needs.

Each child runs in its own session so Ctrl-C reaches only this supervisor, which then sends
SIGTERM to each child's main process (django-q2 wants the signal on the qcluster process, not
its group, to stop its workers cleanly) and waits for them. SIGTERM rather than SIGINT: a
shell that starts us in the background makes its children ignore SIGINT.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from generations.models import ApiKey

DEMO_USER, DEMO_PASSWORD = "demo", "kling-demo"
DEMO_ADMIN = "demo-admin"


class Command(BaseCommand):
    help = "Run the web server and the task cluster together (Ctrl-C stops both)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--addr", help="Address to listen on (default 127.0.0.1, or GUNICORN_BIND's)."
        )
        parser.add_argument("--port", type=int, help="Port (default 8000, or GUNICORN_BIND's).")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Run against the bundled CometAPI simulator with a demo member.",
        )
        parser.add_argument("--simulator-port", type=int, default=8765)
        parser.add_argument(
            "--realistic",
            action="store_true",
            help="With --demo: clips take as long as Kling's (1-2 minutes for 5 s, some 10+).",
        )

    def handle(
        self,
        *args,
        addr: str | None,
        port: int | None,
        demo: bool,
        simulator_port: int,
        realistic: bool,
        **opts,
    ) -> None:
        base_dir = Path(settings.BASE_DIR)
        manage = str(base_dir / "manage.py")
        env = os.environ.copy()
        env.setdefault("PYTHONUNBUFFERED", "1")
        children: list[tuple[str, subprocess.Popen]] = []

        def spawn(name: str, argv: list[str]) -> None:
            proc = subprocess.Popen(argv, env=env, cwd=base_dir, start_new_session=True)
            children.append((name, proc))

        def spawn_manage(name: str, argv: list[str]) -> None:
            spawn(name, [sys.executable, manage, *argv])

        call_command("migrate", interactive=False, verbosity=0)
        if demo:
            timing = ["--realistic"] if realistic else []
            spawn_manage(
                "simulator", ["cometapi_simulator", "--port", str(simulator_port), *timing]
            )
            env["COMETAPI_BASE_URL"] = f"http://127.0.0.1:{simulator_port}"
            admin_password = self._prepare_demo()
        if settings.DEBUG:
            bind = f"{addr or '127.0.0.1'}:{port or 8000}"
            spawn_manage("web", ["runserver", "--noreload", bind])
        else:
            call_command("collectstatic", interactive=False, verbosity=0)
            gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(base_dir / "gunicorn.conf.py")]
            if addr or port:
                bind = f"{addr or '127.0.0.1'}:{port or 8000}"
                gunicorn += ["--bind", bind]
            else:
                bind = env.get("GUNICORN_BIND", "127.0.0.1:8000")
            spawn("web", gunicorn)
        spawn_manage("cluster", ["qcluster"])

        url = f"http://{bind}/"
        self.stdout.write(self.style.SUCCESS(f"Kling Studio is running at {url}"))
        self.stdout.write(f"CometAPI: {env.get('COMETAPI_BASE_URL', settings.COMETAPI_BASE_URL)}")
        if demo:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo member: username {DEMO_USER!r}, password {DEMO_PASSWORD!r}"
                )
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo admin (for {url}admin/): username {DEMO_ADMIN!r}, "
                    f"password {admin_password!r} (new at every start)"
                )
            )
            self.stdout.write(
                "Prompt markers for the simulator: [fail], [policy], [slow], [expire]."
            )
        elif not get_user_model().objects.filter(is_superuser=True).exists():
            self.stdout.write(
                self.style.WARNING("No admin account yet. Make one with: make superuser")
            )
        if not demo and not ApiKey.objects.filter(is_active=True).exists():
            self.stdout.write(
                self.style.WARNING(
                    "No CometAPI key yet. Add one in /admin/ or with: "
                    ".venv/bin/python manage.py add_api_key NAME  (reads the key from stdin)"
                )
            )
        self.stdout.write("Press Ctrl-C to stop.")

        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            while not stopping:
                for name, proc in children:
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with code {proc.returncode}; stopping.")
                        exit_code, stopping = 1, True
                time.sleep(0.3)
        finally:
            self._stop_children(children)
        if exit_code:
            raise CommandError("a process stopped unexpectedly")

    def _stop_children(self, children) -> None:
        for _name, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, proc in children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it.")
                proc.kill()
                proc.wait()
        self.stdout.write("Stopped.")

    def _prepare_demo(self) -> str:
        """The demo member, the demo admin and the simulator's key, in the demo's own
        database (`make superuser` writes to var/, which the demo doesn't read). Returns the
        admin's password: a fresh one at every start, so a demo left reachable on a network
        keeps no well-known admin password."""
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USER)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save()
        admin, _ = User.objects.get_or_create(username=DEMO_ADMIN)
        admin_password = secrets.token_urlsafe(9)
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        # The simulator accepts any key; the demo has its own database (see the Makefile),
        # so this key never meets the real CometAPI.
        ApiKey.objects.get_or_create(
            name="simulator", defaults={"secret": "sk-demo-simulator-key", "concurrency_limit": 5}
        )
        return admin_password
