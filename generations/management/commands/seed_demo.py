"""`manage.py seed_demo --generations N [--user NAME]`: realistic generations for demos,
screenshots and benchmarks.

Rows are made with bulk_create (10,000 in a few seconds). Finished ones point at a handful
of small real clips and posters made once with ffmpeg and shared by many rows (the delete
view only removes a stored file when no row uses it any more).

Only final states are seeded (finished, failed, cancelled): a seeded "queued" row in a
database with a real API key would be submitted, and paid for, by the worker.
"""

import random
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import imageio_ffmpeg
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from generations.governance import costs
from generations.kling import capabilities as caps
from generations.lifecycle.archive import extract_poster
from generations.models import Favourite, Generation, LedgerEntry, Status, Visibility, ledger

TEAM = ["ana", "ben", "chloe", "dev", "emi", "farid"]
SUBJECTS = [
    "A red fox",
    "A paper boat",
    "An old lighthouse keeper",
    "A hummingbird",
    "A vintage tram",
    "A snow leopard",
    "An astronaut",
    "A street musician",
    "A koi carp",
    "A hot-air balloon",
    "A glass teapot",
    "A robot gardener",
]
ACTIONS = [
    "trots through fresh snow",
    "drifts down a rainy neon street",
    "climbs a spiral staircase",
    "hovers over wild flowers",
    "rattles across a bridge at dusk",
    "leaps between mossy rocks",
    "floats above the rings of a gas giant",
    "plays violin under a street lamp",
    "circles slowly in a dark pond",
    "rises over a misty valley",
    "steeps jasmine tea in the sun",
    "waters tomatoes on a rooftop",
]
STYLES = [
    "cinematic, golden hour",
    "soft film grain, 35mm",
    "slow motion, shallow depth of field",
    "anime style, vivid colours",
    "aerial drone shot",
    "macro lens, studio lighting",
    "documentary, handheld camera",
    "watercolour painting come to life",
]
NEGATIVES = ["", "", "", "blurry, low quality", "text, watermark", "distorted faces, extra limbs"]
FAILURES = [
    ("1301", "The prompt was refused by content moderation."),
    ("1303", "The generated video did not pass the safety check."),
    ("lost", "CometAPI stopped answering about this task; it was not charged."),
]
# (name, aspect ratio, width, height, ffmpeg lavfi source)
CLIPS = [
    ("fractal", "16:9", 320, 180, "mandelbrot=size={w}x{h}:rate=12"),
    ("bars", "16:9", 320, 180, "testsrc2=size={w}x{h}:rate=12"),
    ("fractal", "9:16", 180, 320, "mandelbrot=size={w}x{h}:rate=12"),
    ("bars", "9:16", 180, 320, "testsrc2=size={w}x{h}:rate=12"),
    ("fractal", "1:1", 240, 240, "mandelbrot=size={w}x{h}:rate=12"),
    ("bars", "1:1", 240, 240, "testsrc2=size={w}x{h}:rate=12"),
]
SEED_DIR = "seed"  # under videos/ and posters/ in storage


def make_clips() -> dict[str, list[tuple[str, str]]]:
    """Small real clips and posters, made once per storage: aspect ratio → [(video, poster)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for look, ratio, w, h, source in CLIPS:
        slug = f"{look}-{ratio.replace(':', 'x')}"
        video, poster = f"videos/{SEED_DIR}/{slug}.mp4", f"posters/{SEED_DIR}/{slug}.jpg"
        if not (default_storage.exists(video) and default_storage.exists(poster)):
            with tempfile.TemporaryDirectory() as tmp:
                mp4, jpg = Path(tmp) / "clip.mp4", Path(tmp) / "poster.jpg"
                subprocess.run(
                    [
                        ffmpeg, "-nostdin", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", source.format(w=w, h=h), "-t", "2",
                        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(mp4),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )  # fmt: skip
                extract_poster(mp4, jpg, at_seconds=1.0)
                for local, name in ((mp4, video), (jpg, poster)):
                    if default_storage.exists(name):
                        default_storage.delete(name)
                    with local.open("rb") as f:
                        default_storage.save(name, File(f))
        out.setdefault(ratio, []).append((video, poster))
    return out


class Command(BaseCommand):
    help = "Fill the database with N realistic generations (for demos, screenshots, benchmarks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generations", type=int, default=200, metavar="N")
        parser.add_argument(
            "--user",
            metavar="NAME",
            help="Give every generation to this member (made if missing). "
            f"Default: spread over a demo team ({', '.join(TEAM)}).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for repeats.")

    def handle(self, *args, generations: int, user: str | None, seed: int | None, **opts):
        if generations < 0:
            raise CommandError("--generations must be 0 or more")
        rng = random.Random(seed)
        User = get_user_model()
        members = []
        for name in [user] if user else TEAM:
            member, created = User.objects.get_or_create(username=name)
            if created:
                member.set_unusable_password()  # demo members don't log in; `demo` does
                member.save(update_fields=["password"])
            members.append(member)
        clips = make_clips()
        prices = costs.price_table()
        now = timezone.now()
        rows = [self._one(rng, members, clips, prices, now) for _ in range(generations)]
        Generation.objects.bulk_create(rows, batch_size=500)
        # Their money, as the engine would have written it for jobs in their states.
        LedgerEntry.objects.bulk_create(
            [entry for row in rows for entry in ledger.history_entries(row)], batch_size=1000
        )

        # A few stars per member on shared, finished clips. bulk_create sets the ids on
        # SQLite and PostgreSQL; on a backend that doesn't, there are simply no stars.
        shared = [
            g.pk
            for g in rows
            if g.pk and g.visibility == Visibility.TEAM and g.status == Status.SUCCEEDED
        ]
        stars = [
            Favourite(user=m, generation_id=pk)
            for m in members
            for pk in rng.sample(shared, min(len(shared), max(1, len(shared) // 12)))
        ]
        Favourite.objects.bulk_create(stars, batch_size=500, ignore_conflicts=True)
        self.stdout.write(
            f"Seeded {len(rows)} generations for {', '.join(m.get_username() for m in members)}"
            f" and {len(stars)} favourites."
        )

    def _one(self, rng, members, clips, prices, now) -> Generation:
        model_name = rng.choice(list(caps.MODELS))
        model = caps.MODELS[model_name]
        mode = rng.choice(model.modes) if model.modes else ""
        duration = rng.choice(model.durations)
        aspect = rng.choices(["16:9", "9:16", "1:1"], weights=[6, 3, 2])[0]
        camera = None
        if caps.camera_control_allowed(model_name, mode, duration) and rng.random() < 0.4:
            camera = {"type": rng.choice(list(caps.CAMERA_PRESETS))}
        status = rng.choices(
            [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED], weights=[80, 12, 8]
        )[0]
        created = now - timedelta(seconds=rng.randint(60, 120 * 24 * 3600))
        gen = Generation(
            owner=rng.choice(members),
            visibility=Visibility.TEAM if rng.random() < 0.8 else Visibility.PRIVATE,
            prompt=f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)}, {rng.choice(STYLES)}",
            negative_prompt=rng.choice(NEGATIVES),
            model_name=model_name,
            mode=mode,
            duration=duration,
            aspect_ratio=aspect,
            cfg_scale=round(rng.uniform(0.3, 0.8), 2) if model.cfg_scale else None,
            camera_control=camera,
            status=status,
            created_at=created,
        )
        # Its price as accepted, as the studio snapshots it: the usage page and the ledger
        # have money to show.
        price = costs.price_in(prices, model_name, mode, duration)
        gen.price_usd = price.usd if price else None
        if status == Status.CANCELLED:
            gen.finished_at = created + timedelta(seconds=rng.randint(5, 90))
            gen.error_message = "Cancelled before it was sent; nothing was charged."
            return gen
        gen.submit_attempts = 1
        gen.create_sent = True
        gen.task_id = str(rng.randrange(10**17, 10**18))
        gen.submitted_at = created + timedelta(seconds=rng.uniform(0.5, 40))
        gen.finished_at = gen.submitted_at + timedelta(seconds=rng.uniform(50, 420))
        if status == Status.FAILED:
            gen.remote_status = "failed"
            gen.error_code, gen.error_message = rng.choice(FAILURES)
            return gen
        gen.remote_status = "succeed"
        gen.video, gen.poster = rng.choice(clips[aspect])
        gen.video_duration = float(duration)
        gen.units = price.units if price else None
        return gen
