import secrets
import uuid
import zlib
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .crypto import DecryptionError, EncryptedTextField


def mask_secret(secret: str) -> str:
    """Enough of a key for an admin to recognise it, never more than its last 4 characters
    (and nothing of a short one)."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


class ApiKeyManager(models.Manager):
    """Keys without their secret: choosing a key and counting its slots never decrypts, so a
    key that can't be decrypted can't stop the others. Reading `.secret` loads and decrypts
    it then (see lifecycle.key_secret)."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().defer("secret")


class ApiKey(models.Model):
    """A CometAPI key. The secret is encrypted at rest and never shown after it is saved."""

    name = models.CharField(max_length=100, unique=True)
    secret = EncryptedTextField(help_text="The CometAPI key (sk-…). Stored encrypted.")
    is_active = models.BooleanField(default=True, help_text="Admins switch a key off here.")
    concurrency_limit = models.PositiveIntegerField(
        default=5,
        help_text="Most tasks this key may have running upstream at once (its Kling package).",
    )
    # Set by the worker when CometAPI refuses the key itself (401, arrears, no access).
    is_healthy = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    unhealthy_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by each rotation; a generation records the version that created its task
    # (tasks belong to the secret that made them, see keypool.py).
    secret_version = models.PositiveIntegerField(default=1, editable=False)
    # The background probe of an unhealthy key (keypool.probe_unhealthy_keys).
    last_probe_at = models.DateTimeField(null=True, blank=True)
    last_probe_result = models.CharField(max_length=300, blank=True)

    objects = ApiKeyManager()

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def hint(self) -> str:
        """Enough of the key for an admin to recognise it, never enough to use it."""
        try:
            secret = self.secret
        except DecryptionError:
            return "(cannot be decrypted)"
        return mask_secret(secret)


class RetiredSecret(models.Model):
    """A rotated-out secret of a key, kept only while tasks it created are unfinished: Kling
    tasks belong to the secret that created them, so only it can read them and fetch their
    clips. keypool.forget_retired_secrets deletes it once they have all ended."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="retired_secrets")
    version = models.PositiveIntegerField()
    secret = EncryptedTextField()
    retired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "version"], name="one_secret_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} v{self.version}"


class Status(models.TextChoices):
    QUEUED = "queued", "Waiting in our queue"
    SUBMITTING = "submitting", "Submitting"
    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Generating"
    SUCCEEDED = "succeeded", "Finished"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
IN_FLIGHT = (Status.SUBMITTED, Status.PROCESSING)


class RemoteStatus(models.TextChoices):
    """A task's status as CometAPI/Kling spells it (`task_status`), which is not ours."""

    SUBMITTED = "submitted", "Submitted"
    PROCESSING = "processing", "Processing"
    SUCCEED = "succeed", "Succeeded"
    FAILED = "failed", "Failed"


REMOTE_TERMINAL = (RemoteStatus.SUCCEED, RemoteStatus.FAILED)


class Visibility(models.TextChoices):
    TEAM = "team", "Shared with the team"
    PRIVATE = "private", "Private"


class ReviewState(models.TextChoices):
    """Where a clip stands in team review (review.py); members of "Reviewers" set it."""

    NONE = "none", "Not reviewed"
    CHANGES = "changes", "Needs changes"
    APPROVED = "approved", "Approved"


class GenerationQuerySet(models.QuerySet):
    def visible_to(self, user) -> "GenerationQuerySet":
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(visibility=Visibility.TEAM))

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

    # The lifecycle's vocabulary (generations/lifecycle/): each filter it repeats, named once.

    def in_flight(self) -> "GenerationQuerySet":
        """Sent upstream and not finished here (a clip being stored included)."""
        return self.filter(status__in=IN_FLIGHT)

    def live(self) -> "GenerationQuerySet":
        """Rows CometAPI's answers may still move: being submitted or in flight, and not
        finished upstream with a clip still being stored (nothing left to learn)."""
        return self.filter(status__in=[Status.SUBMITTING, *IN_FLIGHT]).exclude(
            remote_status=RemoteStatus.SUCCEED
        )

    def due(self, t) -> "GenerationQuerySet":
        """Rows whose next step (a submit, a read, a download) is due at `t`."""
        return self.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=t))

    def unclaimed(self, t) -> "GenerationQuerySet":
        """Rows no worker holds a live claim on at `t` (a claim's holder keeps renewing it
        while it works: generations/lifecycle/leases.py)."""
        return self.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=t))

    def to_read(self) -> "GenerationQuerySet":
        """In flight and not yet seen finished upstream: what our reads are for."""
        return self.in_flight().exclude(remote_status=RemoteStatus.SUCCEED)

    def to_store(self) -> "GenerationQuerySet":
        """Finished upstream, the clip not yet in our storage."""
        return self.in_flight().filter(remote_status=RemoteStatus.SUCCEED)


def _external_task_id() -> str:
    return f"ks-{uuid.uuid4().hex}"


def _callback_token() -> str:
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
    external_task_id = models.CharField(max_length=64, unique=True, default=_external_task_id)
    task_id = models.CharField(max_length=64, blank=True, help_text="Kling's task id")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    # The api_key's secret_version this job's task was (or will be) created with.
    key_version = models.PositiveIntegerField(null=True, blank=True)
    callback_token = models.CharField(max_length=64, default=_callback_token, editable=False)

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

    # Team review tallies, kept by review.py under a lock on this row (see the review models below).
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
                condition=Q(status__in=["queued", "submitting", "submitted", "processing"]),
            ),
            # "My generations" newest first.
            models.Index(fields=["owner", "-created_at"], name="gen_owner_recent"),
            # Team gallery: shared, finished, newest first.
            models.Index(
                fields=["-created_at"],
                name="gen_team_gallery",
                condition=Q(visibility="team", status="succeeded"),
            ),
            # Team gallery filtered by member (gallery.py, `member=`): one member's shared clips.
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

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def can_cancel(self) -> bool:
        return self.status in (Status.QUEUED, *IN_FLIGHT)

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


class WorkerLease(models.Model):
    """A named lease so one worker at a time runs a singleton loop (the pump)."""

    name = models.CharField(max_length=40, primary_key=True)
    held_until = models.DateTimeField()
    holder = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.name} until {self.held_until:%H:%M:%S}"


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


class Price(models.Model):
    """What one task costs, by model × mode × duration: data admins edit, not code.

    Seeded from CometAPI's published per-task prices (Dec 2025) and Kling's unit table.
    """

    model_name = models.CharField(max_length=40)
    mode = models.CharField(max_length=10, blank=True)  # blank: model has no std/pro split
    duration = models.CharField(max_length=4)
    usd = models.DecimalField("price (USD)", max_digits=8, decimal_places=3)
    units = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # False for prices seeded without a published figure: an admin checks them (admin list).
    confirmed = models.BooleanField(
        default=True, help_text="Untick while the price is a guess an admin must confirm."
    )

    class Meta:
        ordering = ["model_name", "mode", "duration"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "mode", "duration"], name="one_price_per_choice"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.mode or '-'} {self.duration}s: ${self.usd}"


# ---------------------------------------------------------------------------------------
# Team review: comments, ratings, review states, boards and the inbox (review.py,
# boards.py, inbox.py). A generation carries its review state and rating/comment tallies
# itself (kept by review.py under a row lock), so a gallery page filters and sorts on them
# without a join or a subquery per card.


COMMENT_MAX = 2000  # characters; a review note, not an essay
RATING_CHOICES = [(n, str(n)) for n in range(1, 6)]


class Comment(models.Model):
    """A member's comment on a clip, optionally pinned to a moment of it."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments"
    )
    body = models.TextField(max_length=COMMENT_MAX)
    at_seconds = models.FloatField(null=True, blank=True)  # None: about the whole clip
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # A clip's page lists its comments oldest first.
            models.Index(fields=["generation", "created_at"], name="comment_clip_thread"),
        ]

    def __str__(self) -> str:
        return f"{self.author_id} on {self.generation_id}: {self.body[:40]}"


class Rating(models.Model):
    """One member's 1-5 rating of one clip; they change or clear it."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="ratings")
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings"
    )
    stars = models.PositiveSmallIntegerField(choices=RATING_CHOICES)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Its index also serves "this member's rating of this clip" (the clip's page).
            models.UniqueConstraint(fields=["generation", "member"], name="one_rating_per_member"),
            models.CheckConstraint(
                condition=Q(stars__gte=1, stars__lte=5), name="rating_one_to_five"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member_id} rates {self.generation_id}: {self.stars}"


class Review(models.Model):
    """One change of a clip's review state, by a member of the Reviewers group. The latest
    row is the current state (also copied to Generation.review_state); the rest is history."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="reviews"
    )
    state = models.CharField(max_length=10, choices=ReviewState.choices)
    note = models.TextField(blank=True, max_length=COMMENT_MAX)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A clip's page shows its review history, newest first.
            models.Index(fields=["generation", "-created_at"], name="review_clip_history"),
        ]

    def __str__(self) -> str:
        return f"{self.generation_id}: {self.state}"


class BoardQuerySet(models.QuerySet):
    def visible_to(self, user) -> "BoardQuerySet":
        """The member's own boards and the team's; staff see all."""
        if user.is_staff:
            return self
        return self.filter(Q(owner=user) | Q(visibility=Visibility.TEAM))


class Board(models.Model):
    """A member's named collection of clips, for the team or for themself."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="boards"
    )
    name = models.CharField(max_length=100)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.TEAM
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = BoardQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The boards list and the gallery's "on board" choices: the member's own boards...
            models.Index(fields=["owner", "name"], name="board_owner_name"),
            # ...and the team's.
            models.Index(fields=["name"], name="board_team_name", condition=Q(visibility="team")),
        ]

    def __str__(self) -> str:
        return self.name


class BoardItem(models.Model):
    """A clip on a board, at a position the board's owner chooses."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="items")
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="board_items")
    position = models.PositiveIntegerField(default=0)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            # Also the index of "the board's clips in order" (board, then position sorts
            # few rows) and of the gallery's "on board X" filter.
            models.UniqueConstraint(fields=["board", "generation"], name="one_clip_once_per_board")
        ]

    def __str__(self) -> str:
        return f"{self.board_id}#{self.position}: {self.generation_id}"


class Verb(models.TextChoices):
    COMMENTED = "commented", "commented on"
    MENTIONED = "mentioned", "mentioned you on"
    RATED = "rated", "rated"
    REVIEWED = "reviewed", "reviewed"
    BOARDED = "boarded", "added to a board"


class Notification(models.Model):
    """Something another member did that concerns this member: the inbox's rows."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    verb = models.CharField(max_length=10, choices=Verb.choices)
    generation = models.ForeignKey(
        Generation, null=True, on_delete=models.CASCADE, related_name="+"
    )
    board = models.ForeignKey(
        Board, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    comment = models.ForeignKey(
        Comment, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    detail = models.CharField(max_length=200, blank=True)  # "4 stars", "Approved", a board
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The inbox page: a member's events, newest first.
            models.Index(fields=["recipient", "-created_at"], name="note_inbox"),
            # The header's unread count, polled by every open page.
            models.Index(fields=["recipient"], name="note_unread", condition=Q(read_at=None)),
        ]

    def __str__(self) -> str:
        return f"{self.actor_id} {self.verb} → {self.recipient_id}"


class InboxPreference(models.Model):
    """Per member: also send inbox events by email. Off until the member turns it on."""

    member = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox_preference"
    )
    email = models.BooleanField("Email me about these", default=False)

    def __str__(self) -> str:
        return f"{self.member_id}: email {'on' if self.email else 'off'}"


class MemberLimits(models.Model):
    """A member's budget: each limit optional (None: no limit). See budgets.py."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    jobs_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs a day (calendar day). Empty: no limit."
    )
    monthly_spend = models.DecimalField(
        "spend per month (USD)",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Spend per calendar month at the price table's prices. Empty: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "budget limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class TeamLimits(models.Model):
    """The whole team's budget: one row (pk 1), made by a migration, so a submit can lock
    it (see budgets.py) without racing to create it."""

    monthly_spend = models.DecimalField(
        "team spend per month (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Everyone's spend per calendar month together. Empty: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "team budget"

    def __str__(self) -> str:
        return "Team budget"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1  # the one row, whoever makes it
        super().save(*args, **kwargs)


class AuditEvent(models.Model):
    """One change that matters to money or access: who, when, what, to what. Written by
    audit.record only, read-only in admin, and never holding a secret (a key's mask at
    most)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who, in words: a member's username, or the shell command and the OS user.
    actor = models.CharField(max_length=200)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor}: {self.action} {self.target}"


class DownloadSlot(models.Model):
    """One of a member's few concurrent zip downloads (see zipslots.py). A row per running
    download, numbered below the limit, so the unique constraint is the semaphore and it
    holds across web processes and machines; a row whose lease ran out (a crashed worker, a
    client that stopped reading) no longer counts."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="download_slots"
    )
    number = models.PositiveSmallIntegerField()
    token = models.UUIDField(default=uuid.uuid4, unique=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "number"], name="one_download_per_slot")
        ]

    def __str__(self) -> str:
        return f"download slot {self.number} of {self.owner_id} until {self.expires_at}"


from .lifecycle.heartbeat import ClusterHeartbeat  # noqa: E402, F401 (registers the model)
