"""Team review: comments, ratings, review states, boards and the inbox."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..access import BoardAccessQuerySet, Visibility
from .generation import Generation, ReviewState

# ---------------------------------------------------------------------------------------
# Team review: comments, ratings, review states, boards and the inbox (review/notes.py,
# review/boards.py, review/inbox.py). A generation carries its review state and its rating and
# comment tallies itself (kept by review/notes.py under a row lock), so a gallery page filters
# and sorts on them without a join or a subquery per card.


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


class BoardQuerySet(BoardAccessQuerySet):
    """`visible_to(viewer)` and `editable_by(viewer)` come from the access rule (access.py)."""


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
