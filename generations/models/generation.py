"""A member's generation: its parameters, its job state, and the queries that read it."""

import secrets
import uuid
import zlib
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..access import ClipQuerySet, Visibility
from . import ledger
from .keys import ApiKey
from .states import (
    CANCELLABLE,
    IN_FLIGHT,
    LIVE,
    TERMINAL,
    TO_READ,
    TO_STORE,
    IllegalTransition,
    RemoteStatus,
    Status,
    check_move,
    is_charged,
)


class ReviewState(models.TextChoices):
    """Where a clip stands in team review (review/notes.py); members of "Reviewers" set it."""

    NONE = "none", "Not reviewed"
    CHANGES = "changes", "Needs changes"
    APPROVED = "approved", "Approved"


class GenerationQuerySet(ClipQuerySet):
    """`visible_to(viewer)` and `managed_by(viewer)` come from the access rule (access.py)."""

    def for_cards(self, user=None) -> "GenerationQuerySet":
        """What a card shows, in one query: the owner, and with a user, whether they starred it
        (`is_favourite`), so a page of cards costs the same whatever its length."""
        qs = self.select_related("owner")
        if user is not None and user.is_authenticated:
            qs = qs.annotate(
                is_favourite=Exists(Favourite.objects.filter(user=user, generation=OuterRef("pk")))
            )
        return qs

    def starred_by(self, user) -> "GenerationQuerySet":
        return self.filter(favourites__user=user)

    def team_gallery(self, user=None) -> "GenerationQuerySet":
        return self.filter(visibility=Visibility.TEAM, status=Status.SUCCEEDED).for_cards(user)

    # The lifecycle's vocabulary (generations/lifecycle/): each filter it repeats, named once,
    # each set derived from the table of states (models/states.py).

    def in_flight(self) -> "GenerationQuerySet":
        """Sent upstream and not finished here (a clip being stored included)."""
        return self.filter(status__in=IN_FLIGHT)

    def to_read(self) -> "GenerationQuerySet":
        """In flight and not yet seen finished upstream: what our reads are for, and what a
        push may make due."""
        return self.filter(status__in=TO_READ)

    def to_store(self) -> "GenerationQuerySet":
        """Finished upstream, the clip not yet in our storage."""
        return self.filter(status__in=TO_STORE)

    def due(self, t) -> "GenerationQuerySet":
        """Rows whose next step (a submit, a read, a download) is due at `t`."""
        return self.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))

    def unclaimed(self, t) -> "GenerationQuerySet":
        """Rows no worker holds a live claim on at `t` (a claim's holder keeps renewing it
        while it works: generations/lifecycle/claims.py)."""
        return self.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=t))

    # Moves between states: the only way the status changes once a row exists.

    def move(self, sources, target: str, **fields) -> int:
        """Move the rows of this queryset that are in one of `sources` to `target` (one
        conditional UPDATE), setting `fields` too; returns how many moved. Raises
        IllegalTransition if the table (models/states.py) has no move from one of `sources`
        to `target`, whether or not a row would have moved: a wrong move is a bug."""
        sources = [sources] if isinstance(sources, str) else list(sources)
        check_move(sources, target)
        rows = self.filter(status__in=sources)
        if target != Status.SUBMITTED and target not in TERMINAL:
            return models.QuerySet.update(rows, status=target, **fields)
        # A move the ledger records (models/ledger.py): the task now exists upstream, or the
        # job ended. The rows are locked and read, moved, and their entries written in one
        # transaction, so an entry is written exactly for the rows that moved.
        with transaction.atomic():
            moving = list(rows.select_for_update(of=("self",)).values(*ledger.ROW_FIELDS))
            if not moving:
                return 0
            moved = models.QuerySet.update(
                self.model.objects.filter(pk__in=[r["pk"] for r in moving], status__in=sources),
                status=target,
                **fields,
            )
            if target == Status.SUBMITTED:
                ledger.record_sent(moving)
            else:
                for refund in (True, False):
                    group = [r for r in moving if is_charged(target, r["create_sent"]) != refund]
                    if group:
                        ledger.record_ends(group, target, refund, fields.get("units"))
        return moved

    def update(self, **fields) -> int:
        if "status" in fields:
            raise IllegalTransition(
                "the status changes only through GenerationQuerySet.move(), which checks the "
                "table of states"
            )
        return super().update(**fields)


def new_external_task_id() -> str:
    return f"ks-{uuid.uuid4().hex}"


def new_callback_token() -> str:
    return secrets.token_urlsafe(32)


class Generation(models.Model):
    """One text-to-video request of a member, from the form to the stored clip."""

    # Public id in URLs, so integer keys don't reveal how many generations exist.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.TEAM
    )

    # The create parameters, named as in the API.
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True)
    model_name = models.CharField(max_length=40)
    mode = models.CharField(max_length=10, blank=True)  # blank: model has no std/pro split
    duration = models.CharField(max_length=4)  # "5" | "10": the API wants a string
    aspect_ratio = models.CharField(max_length=8)
    cfg_scale = models.FloatField(null=True, blank=True)  # None: not sent
    camera_control = models.JSONField(null=True, blank=True)  # None: automatic camera

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # Ours, sent with the create: finds the task again when a create's answer was lost.
    external_task_id = models.CharField(max_length=64, unique=True, default=new_external_task_id)
    task_id = models.CharField(max_length=64, blank=True, help_text="Kling's task id")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    # The api_key's secret_version this job's task was (or will be) created with.
    key_version = models.PositiveIntegerField(null=True, blank=True)
    callback_token = models.CharField(max_length=64, default=new_callback_token, editable=False)

    # Lifecycle bookkeeping: see the lifecycle package.
    # Kling's word, as last seen (blank: not read yet).
    remote_status = models.CharField(max_length=12, blank=True, choices=RemoteStatus.choices)
    remote_updated_at_ms = models.BigIntegerField(null=True, blank=True)
    submit_attempts = models.PositiveIntegerField(default=0)
    # True once a create may have reached CometAPI: later attempts look before they create.
    create_sent = models.BooleanField(default=False)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # next submit/poll/archive
    # A worker's claim on the row (a submit or a download): kept alive by its holder's
    # heartbeat while it works, so it runs out soon after the holder dies.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=80, blank=True)
    poll_count = models.PositiveIntegerField(default=0)
    # When Kling last pushed this task's progress to our callback: proof that pushes reach
    # us, so reads only reconcile (see lifecycle.next_read_delay).
    last_push_at = models.DateTimeField(null=True, blank=True)
    wait_reason = models.CharField(max_length=200, blank=True)

    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)

    remote_video_url = models.URLField(max_length=2000, blank=True)
    video = models.FileField(upload_to="videos/%Y/%m/", blank=True)
    poster = models.FileField(upload_to="posters/%Y/%m/", blank=True)
    video_duration = models.FloatField(null=True, blank=True)
    units = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # Our price for this job (the Price table's, USD) when it was accepted: later edits of
    # the table don't rewrite what was spent. None: no price was on file.
    price_usd = models.DecimalField(max_digits=8, decimal_places=3, null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Team review tallies, kept by review/notes.py under a lock on this row (models/review.py).
    review_state = models.CharField(
        max_length=10, choices=ReviewState.choices, default=ReviewState.NONE
    )
    rating_avg = models.FloatField(default=0)  # 0: not rated yet
    rating_count = models.PositiveIntegerField(default=0)
    comment_count = models.PositiveIntegerField(default=0)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The worker's pass: non-terminal rows whose next step is due.
            models.Index(
                fields=["next_attempt_at"],
                name="gen_due_work",
                condition=Q(status__in=[str(s) for s in LIVE]),
            ),
            # "My generations" newest first.
            models.Index(fields=["owner", "-created_at"], name="gen_owner_recent"),
            # Team gallery: shared, finished, newest first.
            models.Index(
                fields=["-created_at"],
                name="gen_team_gallery",
                condition=Q(visibility="team", status="succeeded"),
            ),
            # Team gallery filtered by member (galleries/filters.py, `member=`): one member's
            # shared clips.
            models.Index(
                fields=["owner", "-created_at"],
                name="gen_team_by_member",
                condition=Q(visibility="team", status="succeeded"),
            ),
            # "My generations" filtered by state (`state=failed`, …): without it a rare state
            # means walking all of the member's rows.
            models.Index(fields=["owner", "status", "-created_at"], name="gen_owner_state_recent"),
            # Team gallery sorted by rating ("Highest rated"), keyset-paged like the others.
            models.Index(
                fields=["-rating_avg", "-created_at", "-id"],
                name="gen_team_by_rating",
                condition=Q(visibility="team", status="succeeded"),
            ),
            # Team gallery filtered by review state ("Approved only", "Needs changes").
            models.Index(
                fields=["review_state", "-created_at"],
                name="gen_team_by_review",
                condition=Q(visibility="team", status="succeeded"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt[:40]} ({self.get_status_display()})"

    @staticmethod
    def version_of(status: str, remote_status: str, wait_reason: str) -> str:
        """What an in-flight card shows, in a few characters: the polling card sends it back
        and the status view answers 204 (nothing to swap) while it still matches."""
        return f"{status}.{remote_status or '-'}.{zlib.crc32(wait_reason.encode()):x}"

    @property
    def card_version(self) -> str:
        return self.version_of(self.status, self.remote_status, self.wait_reason)

    @staticmethod
    def live_version_of(
        status: str, remote_status: str, wait_reason: str, place: int | None, no_key: str
    ) -> str:
        """What a live card shows, as the page's poll sends it back: its version, and for a
        queued card its place in line and whether a key can send it, which change without
        the row changing."""
        version = Generation.version_of(status, remote_status, wait_reason)
        if status != Status.QUEUED:
            return version
        return f"{version}.{place or 0}.{no_key or '-'}"

    @property
    def live_version(self) -> str:
        """`live_version_of` this row (its place in line set by the studio's
        `_with_queue_positions`)."""
        return self.live_version_of(
            self.status,
            self.remote_status,
            self.wait_reason,
            getattr(self, "queue_position", None),
            getattr(self, "no_key", ""),
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def elapsed(self) -> timedelta:
        end = self.finished_at or timezone.now()
        return end - self.created_at

    def api_params(self) -> dict:
        """The create body CometAPI receives (without our callback_url)."""
        params: dict = {
            "prompt": self.prompt,
            "model_name": self.model_name,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
            "external_task_id": self.external_task_id,
        }
        if self.negative_prompt:
            params["negative_prompt"] = self.negative_prompt
        if self.mode:
            params["mode"] = self.mode
        if self.cfg_scale is not None:
            params["cfg_scale"] = self.cfg_scale
        if self.camera_control:
            params["camera_control"] = self.camera_control
        return params


class Favourite(models.Model):
    """A member's star on a generation (their own or a shared one)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites"
    )
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "generation"], name="one_star_per_member")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ★ {self.generation_id}"
