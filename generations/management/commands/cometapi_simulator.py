"""``manage.py cometapi_simulator``: run the bundled fake CometAPI until Ctrl-C.

A thin wrapper over ``generations.simulator.server``; point ``COMETAPI_BASE_URL`` at the URL it
prints. Any key works unless ``--keys`` is given.
"""

import signal
import threading
from argparse import ArgumentParser, ArgumentTypeError
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from generations.simulator.server import Simulator

DEFAULT_PORT = 8765


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ArgumentTypeError("must be between 0 and 1")
    return value


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C


class Command(BaseCommand):
    help = "Run the bundled CometAPI Kling simulator (a fake upstream for demos and tests)."
    # A fake upstream needs no database: start even when the app's checks would fail.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="bind address (127.0.0.1)")
        parser.add_argument(
            "--port", type=int, default=DEFAULT_PORT, help=f"0 picks a free port ({DEFAULT_PORT})"
        )
        parser.add_argument(
            "--speed", type=float, default=1.0, help="time factor: 10 runs ten times faster"
        )
        parser.add_argument(
            "--fault-5xx", type=_probability, default=0.0, help="probability of a 5xx answer"
        )
        parser.add_argument(
            "--lost-create",
            type=_probability,
            default=0.0,
            help="probability that a create is stored but answered with a 5xx",
        )
        parser.add_argument(
            "--concurrency", type=int, default=None, help="running tasks allowed per key"
        )
        parser.add_argument("--keys", default="", help="comma-separated accepted keys (any)")
        parser.add_argument("--seed", type=int, default=None, help="seed for fault draws")
        parser.add_argument(
            "--processing-after", type=float, default=3.0, help="seconds until processing"
        )
        parser.add_argument("--finish-after", type=float, default=12.0, help="seconds to finish")
        parser.add_argument(
            "--finish-spread",
            type=float,
            default=0.0,
            help="each task ends up to this many seconds later (uniform), as real clips vary",
        )
        parser.add_argument(
            "--download-delay",
            type=float,
            default=0.0,
            help="seconds a clip's download takes (a slow CDN; 0: at once)",
        )
        parser.add_argument(
            "--realistic",
            action="store_true",
            help="real timing: 1-2 minutes for a 5 s clip, twice for 10 s, a few past 10 minutes",
        )
        parser.add_argument("--verbose", action="store_true", help="print one line per request")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive.")
        if options["download_delay"] < 0:
            raise CommandError("--download-delay must be 0 or more.")
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        keys = [key.strip() for key in options["keys"].split(",") if key.strip()]
        simulator = Simulator(
            host=options["host"],
            port=options["port"],
            speed=options["speed"],
            keys=keys or None,
            fault_5xx=options["fault_5xx"],
            lost_create=options["lost_create"],
            concurrency=options["concurrency"],
            seed=options["seed"],
            processing_after=options["processing_after"],
            finish_after=options["finish_after"],
            finish_spread=options["finish_spread"],
            download_delay=options["download_delay"],
            realistic=options["realistic"],
            log=self._print if options["verbose"] else None,
        )
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)
        try:
            simulator.start()
        except OSError as error:
            address = f"{options['host']}:{options['port']}"
            raise CommandError(f"Cannot listen on {address}: {error}") from error
        try:
            # Flushed at once: scripts wait for this line to learn the URL (port 0 picks one).
            self._print(
                f"CometAPI simulator listening on {simulator.base_url} "
                f"(speed {options['speed']:g}x, codec {simulator.video_codec}); Ctrl-C to stop"
            )
            simulator.serve_forever()  # returns on Ctrl-C or SIGTERM
        except KeyboardInterrupt:
            pass  # interrupted before serve_forever() took over
        finally:
            simulator.stop()  # idempotent: serve_forever() may have stopped it already
        self._print("CometAPI simulator stopped")

    def _print(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
