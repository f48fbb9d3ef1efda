"""The galleries' filter bar and the selection it makes: one filtered queryset
(`filtered_selection`), so a page, its next-page partial and a zip always agree on what
"these clips" means.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from ..kling import capabilities as caps
from ..models import (
    Board,
    Generation,
    GenerationQuerySet,
    ReviewState,
    Status,
)
from ..web import day_start, within_range

SEARCH_WORDS = 8  # more words than this in a search are ignored: each is one LIKE


@dataclass(frozen=True)
class Scope:
    name: str  # "mine" | "team"
    title: str
    url_name: str
    zip_url_name: str
    view_url_name: str  # the full-window viewer, stepping through this list
    bulk_url_name: str  # where the ticked clips are posted (zip, delete, visibility)


MINE = Scope(
    "mine",
    "My generations",
    "my-generations",
    "my-generations-zip",
    "mine-view",
    "my-generations-bulk",
)
TEAM = Scope("team", "Team gallery", "gallery", "gallery-zip", "gallery-view", "gallery-bulk")


def _choices(label: str, pairs) -> list[tuple[str, str]]:
    return [("", label), *pairs]


class GalleryFilters(forms.Form):
    """The filter bar. Every field is optional; a bad value is reported and ignored."""

    q = forms.CharField(
        label="Search prompts", required=False, max_length=200, widget=forms.SearchInput
    )
    state = forms.ChoiceField(
        label="State", required=False, choices=_choices("Any state", Status.choices)
    )
    model = forms.ChoiceField(
        label="Model",
        required=False,
        choices=_choices("Any model", [(k, v.label) for k, v in caps.MODELS.items()]),
    )
    mode = forms.ChoiceField(
        label="Mode", required=False, choices=_choices("Any mode", caps.MODE_NAMES.items())
    )
    duration = forms.ChoiceField(
        label="Duration", required=False, choices=_choices("Any length", caps.DURATIONS.items())
    )
    aspect = forms.ChoiceField(
        label="Aspect ratio",
        required=False,
        choices=_choices("Any shape", caps.ASPECT_RATIOS.items()),
    )
    member = forms.ChoiceField(label="Member", required=False)
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    starred = forms.BooleanField(label="Favourites only", required=False)
    # Team review (review/notes.py): the tallies and state stored on the row, so no join.
    review = forms.ChoiceField(
        label="Review",
        required=False,
        choices=_choices(
            "Any review state",
            [(ReviewState.APPROVED, "Approved only"), (ReviewState.CHANGES, "Needs changes")],
        ),
    )
    min_rating = forms.TypedChoiceField(
        label="Rated at least",
        required=False,
        coerce=int,
        empty_value=None,
        choices=_choices(
            "Any rating", [(n, f"{n} star{'s' if n > 1 else ''}") for n in range(1, 6)]
        ),
    )
    commented = forms.BooleanField(label="Has comments", required=False)
    board = forms.ChoiceField(label="On board", required=False)
    order = forms.ChoiceField(
        label="Order",
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("rating", "Highest rated"),
        ],
    )

    def __init__(
        self,
        *args,
        scope: Scope,
        members: dict[str, int] | None = None,
        boards: dict[str, tuple[int, str]] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.notes: list[str] = []  # filters applied other than as given, and why
        self.members = members or {}
        self.boards = boards or {}
        self.fields["board"].choices = _choices(
            "Any board", ((key, name) for key, (_pk, name) in self.boards.items())
        )
        if scope is MINE:
            del self.fields["member"]  # always the member themself
        else:
            del self.fields["state"]  # the team gallery is finished clips only
            self.fields["member"].choices = _choices("Anyone", ((u, u) for u in self.members))

    def clean_since(self) -> date | None:
        return within_range(self.cleaned_data["since"])

    def clean_until(self) -> date | None:
        return within_range(self.cleaned_data["until"])

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            # Both dates were meant; applying one of them would show an empty page.
            data["since"], data["until"] = until, since
            self.notes.append(
                f"From was after To, so they were swapped: {until:%-d %b %Y} to {since:%-d %b %Y}."
            )
        return data

    def ignored(self) -> list[str]:
        """One plain sentence per filter that was not applied."""
        out = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else "Filters"
            out.append(f"{label}: {' '.join(errors)}")
        return out


# A day's bounds are its local midnight and the next one, in UTC for the database: a day
# one short of date.min/date.max keeps both inside datetime's range in every time zone
# (offsets, old local mean times included, are under a day). Beyond them Python raises
# OverflowError, which used to be a 500.
def _apply_filters(qs: GenerationQuerySet, form: GalleryFilters, user) -> GenerationQuerySet:
    form.is_valid()  # fills cleaned_data with the valid fields; errors are shown, not raised
    data = form.cleaned_data
    for word in (data.get("q") or "").split()[:SEARCH_WORDS]:
        qs = qs.filter(prompt__icontains=word)
    simple = {
        "state": "status",
        "model": "model_name",
        "mode": "mode",
        "duration": "duration",
        "aspect": "aspect_ratio",
    }
    for field, column in simple.items():
        if data.get(field):
            qs = qs.filter(**{column: data[field]})
    if data.get("member"):
        qs = qs.filter(owner_id=form.members[data["member"]])
    if data.get("since"):
        qs = qs.filter(created_at__gte=day_start(data["since"]))
    if data.get("until"):
        qs = qs.filter(created_at__lt=day_start(data["until"] + timedelta(days=1)))
    if data.get("starred"):
        qs = qs.starred_by(user)
    if data.get("review"):
        qs = qs.filter(review_state=data["review"])
    if data.get("min_rating"):
        qs = qs.filter(rating_count__gt=0, rating_avg__gte=data["min_rating"])
    if data.get("commented"):
        qs = qs.filter(comment_count__gt=0)
    if data.get("board"):
        qs = qs.filter(board_items__board_id=form.boards[data["board"]][0])
    return qs


def _members() -> dict[str, int]:
    User = get_user_model()
    rows = User.objects.filter(is_active=True).order_by(User.USERNAME_FIELD)
    return dict(rows.values_list(User.USERNAME_FIELD, "pk"))


def _boards(user) -> dict[str, tuple[int, str]]:
    """The boards this member may filter by: public id → (pk, name)."""
    rows = Board.objects.visible_to(user).only("pk", "public_id", "name").order_by("name", "id")
    return {str(b.public_id): (b.pk, b.name) for b in rows[:200]}


# Each order is a keyset: the cursor holds these columns of the last card shown.
ORDERS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "rating": ("-rating_avg", "-created_at", "-id"),
}


def order_of(form: GalleryFilters) -> str:
    return form.cleaned_data.get("order") or "newest"


def filtered_selection(
    request: HttpRequest, scope: Scope
) -> tuple[GalleryFilters, GenerationQuerySet]:
    """The filter form and the generations it selects, in the order asked for."""
    user = request.user
    if scope is MINE:
        form = GalleryFilters(request.GET, scope=scope, boards=_boards(user))
        qs = Generation.objects.filter(owner=user).for_cards(user)
    else:
        form = GalleryFilters(request.GET, scope=scope, members=_members(), boards=_boards(user))
        qs = Generation.objects.team_gallery(user)
    qs = _apply_filters(qs, form, user)
    return form, qs.order_by(*ORDERS[order_of(form)])
