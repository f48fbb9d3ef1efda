"""Who may see and who may change what: the one place the rule is spelled.

A *viewer* is a signed-in member; staff see and manage everything. (A share link for people
outside the team will be one more kind of viewer, answered here.)

- A **clip** (a generation) is seen by its owner, by staff, and by every member once it is
  shared with the team. It is managed (made private, cancelled, retried, deleted) by its
  owner and staff.
- A **board** is seen by its owner, by staff, and by every member when it is the team's. It is
  edited by its owner.
- What hangs off a clip (its comments, board items, notifications) is seen by whoever sees
  the clip: `clip_rule(viewer, via="generation__")`.

Every form of the question reads the rules below: `clip_rule` / `board_rule` as a condition
for any query (lists, related lookups), `visible_to` on the QuerySets (the models' QuerySets
are built on the ones here), `can_see` / `can_manage` for an object in hand,
`get_clip_or_404` and friends for views (404, never 403: a private clip isn't even
confirmed to exist), and `members_who_can_see` for the reverse question (@mentions,
notifications). The models import this module, so it imports none of ours at load time.
"""

from typing import TYPE_CHECKING, Any, Protocol

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.http import Http404

if TYPE_CHECKING:
    from .models import Board, Generation


class Visibility(models.TextChoices):
    """Who sees a clip or a board besides its owner and staff."""

    TEAM = "team", "Shared with the team"
    PRIVATE = "private", "Private"


class Owned(Protocol):
    """A clip or a board as the rule reads it: a row, or the values of one."""

    owner_id: Any
    visibility: str


# ---------------------------------------------------------------------------------------
# The rules, as conditions (`via` reaches the clip or board through a relation)


def _everything(via: str) -> Q:
    """A condition every row meets. Not `Q()`: Django drops an empty Q from an OR, so
    `Q(generation=None) | Q()` would mean only `generation=None`."""
    return Q(**{f"{via}pk__isnull": False})


def clip_rule(viewer, via: str = "") -> Q:
    """The clips `viewer` may see."""
    if viewer.is_staff:
        return _everything(via)
    return Q(**{f"{via}owner": viewer}) | Q(**{f"{via}visibility": Visibility.TEAM})


def manage_rule(viewer, via: str = "") -> Q:
    """The clips `viewer` may change."""
    if viewer.is_staff:
        return _everything(via)
    return Q(**{f"{via}owner": viewer})


def board_rule(viewer, via: str = "") -> Q:
    """The boards `viewer` may open: their own and the team's; staff see all."""
    return clip_rule(viewer, via)  # the same rule as a clip's, stated for boards


def board_edit_rule(viewer, via: str = "") -> Q:
    """The boards `viewer` may rename, reorder or delete: their own."""
    return Q(**{f"{via}owner": viewer})


# ---------------------------------------------------------------------------------------
# The same rules for one object in hand (tests/test_access.py holds the two forms together)


def can_see(viewer, clip: Owned) -> bool:
    return bool(viewer.is_staff or clip.owner_id == viewer.pk or clip.visibility == Visibility.TEAM)


def can_manage(viewer, clip: Owned) -> bool:
    return bool(viewer.is_staff or clip.owner_id == viewer.pk)


def can_see_board(viewer, board: Owned) -> bool:
    return can_see(viewer, board)


def can_edit_board(viewer, board: Owned) -> bool:
    return board.owner_id == viewer.pk


# ---------------------------------------------------------------------------------------
# QuerySets: the models' Generation and Board QuerySets build on these


class ClipQuerySet(models.QuerySet):
    def visible_to(self, viewer) -> "ClipQuerySet":
        return self.filter(clip_rule(viewer))

    def managed_by(self, viewer) -> "ClipQuerySet":
        return self.filter(manage_rule(viewer))


class BoardAccessQuerySet(models.QuerySet):
    def visible_to(self, viewer) -> "BoardAccessQuerySet":
        return self.filter(board_rule(viewer))

    def editable_by(self, viewer) -> "BoardAccessQuerySet":
        return self.filter(board_edit_rule(viewer))


# ---------------------------------------------------------------------------------------
# For views: the object, or 404


def _one(qs: models.QuerySet, public_id, what: str):
    try:
        return qs.get(public_id=public_id)
    except (qs.model.DoesNotExist, ValidationError, ValueError):
        raise Http404(f"No such {what}") from None


def _clips() -> models.QuerySet:
    # By name, not by import: the models import this module.
    return apps.get_model("generations", "Generation").objects.all()


def get_clip_or_404(viewer, public_id) -> "Generation":
    """The clip, as a card shows it (owner, star), if `viewer` may see it."""
    return _one(_clips().visible_to(viewer).for_cards(viewer), public_id, "generation")


def get_managed_clip_or_404(viewer, public_id) -> "Generation":
    """The clip, if `viewer` may change it (one they may only see is a 404 too)."""
    return _one(_clips().managed_by(viewer).for_cards(viewer), public_id, "generation")


def get_board_or_404(viewer, public_id) -> "Board":
    boards = apps.get_model("generations", "Board").objects.select_related("owner")
    return _one(boards.visible_to(viewer), public_id, "board")


def get_editable_board_or_404(viewer, public_id) -> "Board":
    boards = apps.get_model("generations", "Board").objects.select_related("owner")
    return _one(boards.editable_by(viewer), public_id, "board")


# ---------------------------------------------------------------------------------------
# The reverse question


def members_who_can_see(clip: Owned) -> models.QuerySet:
    """The active members who may see `clip`: everyone for a team clip; its owner and staff
    for a private one (whom an @mention may reach, whom a notification may tell)."""
    members = get_user_model().objects.filter(is_active=True)
    if clip.visibility == Visibility.TEAM:
        return members
    return members.filter(Q(pk=clip.owner_id) | Q(is_staff=True))
