"""Boards: a member's named, ordered collections of clips (for the team or private), their
zip, and Compare (two to four clips side by side, in sync).

A board only ever shows what the viewer may see: a private clip on a team board stays
invisible to everyone but its owner (and staff), on the page, in the zip and in Compare.
Only a board's owner changes it; anyone who may see it may open, play and download it.
"""

import json
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .. import access
from ..galleries.zips import download_name, iso_time, zip_response
from ..models import Board, BoardItem, Comment, Generation, Rating, Review, Status, Verb, Visibility
from ..validators import VisibleTextValidator
from ..web import HtmxHttpRequest, next_url, redirect_next
from . import inbox

COMPARE_MIN, COMPARE_MAX = 2, 4


def board_clips(board: Board, user) -> list[Generation]:
    """The board's clips the viewer may see, in the board's order, each carrying its item
    (`board_item`) for the reorder and remove buttons."""
    items = (
        BoardItem.objects.filter(access.clip_rule(user, via="generation__"), board=board)
        .select_related("generation__owner")
        .order_by("position", "id")
    )
    clips = []
    for item in items:
        gen = item.generation
        gen.board_item = item
        clips.append(gen)
    return clips


class BoardForm(forms.ModelForm):
    name = forms.CharField(
        label="Board name",
        max_length=100,
        validators=[VisibleTextValidator("The board name")],
        error_messages={"required": "Give the board a name."},
    )

    class Meta:
        model = Board
        fields = ["name", "visibility"]
        labels = {"visibility": "Who sees it"}
        widgets = {"visibility": forms.RadioSelect}


# ---------------------------------------------------------------------------------------
# Boards list, one board, create, edit, delete


@require_http_methods(["GET", "POST"])
def board_list(request: HttpRequest) -> HttpResponse:
    """GET: the member's boards and the team's. POST: make a new board."""
    form = BoardForm(request.POST or None, initial={"visibility": Visibility.TEAM})
    if request.method == "POST" and form.is_valid():
        board = form.save(commit=False)
        board.owner = request.user
        board.save()
        messages.success(request, f"Board “{board.name}” made. Add clips from any clip's page.")
        return redirect("board-detail", board.public_id)
    boards = list(Board.objects.visible_to(request.user).order_by("name", "id"))
    context = {
        "mine": [b for b in boards if access.can_edit_board(request.user, b)],
        "team": [b for b in boards if not access.can_edit_board(request.user, b)],
        "form": form,
    }
    return render(
        request, "generations/board_list.html", context, status=422 if form.errors else 200
    )


@require_GET
def board_detail(request: HttpRequest, public_id) -> HttpResponse:
    board = access.get_board_or_404(request.user, public_id)
    clips = board_clips(board, request.user)
    context = {
        "board": board,
        "clips": clips,
        "can_edit": access.can_edit_board(request.user, board),
        "edit_form": BoardForm(instance=board, auto_id="edit-%s"),
        "compare_max": COMPARE_MAX,
    }
    return render(request, "generations/board_detail.html", context)


@require_POST
def board_edit(request: HttpRequest, public_id) -> HttpResponse:
    board = access.get_editable_board_or_404(request.user, public_id)
    form = BoardForm(request.POST, instance=board, auto_id="edit-%s")
    if form.is_valid():
        form.save()
        messages.success(request, "Board saved.")
    else:
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
    return redirect("board-detail", board.public_id)


@require_POST
def board_delete(request: HttpRequest, public_id) -> HttpResponse:
    board = access.get_editable_board_or_404(request.user, public_id)
    board.delete()
    messages.success(request, f"Board “{board.name}” deleted. Its clips are untouched.")
    return redirect("board-list")


# ---------------------------------------------------------------------------------------
# Clips on a board: add, move, remove


def add_to_board(board: Board, gen: Generation, member) -> bool:
    """False when the clip is already on the board (a resent form changes nothing)."""
    with transaction.atomic():
        last = BoardItem.objects.filter(board=board).aggregate(m=Max("position"))["m"]
        try:
            with transaction.atomic():
                BoardItem.objects.create(board=board, generation=gen, position=(last or 0) + 1)
        except IntegrityError:
            return False
        # Its owner hears of it only when they may open the board themself.
        if access.can_see_board(gen.owner, board):
            inbox.notify(
                gen.owner, member, Verb.BOARDED, generation=gen, board=board, detail=board.name
            )
    return True


@require_http_methods(["GET", "POST"])
def clip_boards(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """GET: the member's boards, to add this clip to one (the card's "Add to board" link).
    POST: add it to `board` (one of the member's), or to a new board named `new_board`.
    Asked by htmx (a gallery's dialog), both answer the picker alone, saying what happened,
    so the member keeps their place; otherwise a POST returns to `next` with a message."""
    gen = access.get_clip_or_404(request.user, public_id)
    mine = Board.objects.editable_by(request.user).order_by("name", "id")
    note = None
    if request.method == "POST":
        board = None
        if name := request.POST.get("new_board", "").strip():
            form = BoardForm({"name": name, "visibility": Visibility.TEAM})
            if form.is_valid():
                # A resent form (a double click) finds the board the first one made. The
                # member's row is locked so two at once can't both miss it (PostgreSQL;
                # SQLite's write transactions already take turns).
                with transaction.atomic():
                    User = get_user_model()
                    list(User.objects.select_for_update().filter(pk=request.user.pk))
                    board, _ = mine.get_or_create(
                        name=form.cleaned_data["name"],
                        defaults={"owner": request.user, "visibility": Visibility.TEAM},
                    )
            else:
                note = (messages.ERROR, " ".join(form.errors.get("name", ["Bad board name."])))
        else:
            try:
                board = mine.get(public_id=uuid.UUID(request.POST.get("board", "")))
            except (ValueError, Board.DoesNotExist):
                note = (messages.ERROR, "Pick one of your boards (or name a new one).")
        if board is not None:
            if add_to_board(board, gen, request.user):
                note = (messages.SUCCESS, f"Added to “{board.name}”.")
            else:
                note = (messages.INFO, f"It is already on “{board.name}”.")
        if not request.htmx:
            messages.add_message(request, *note)
            return redirect_next(request, reverse("generation-detail", args=[gen.public_id]))
    on = set(BoardItem.objects.filter(generation=gen).values_list("board_id", flat=True))
    context = {
        "generation": gen,
        "boards": list(mine),
        "on_boards": on,
        "note": note and note[1],
        "note_is_error": bool(note) and note[0] == messages.ERROR,
    }
    template = "generations/clip_boards.html"
    if request.htmx:
        template += "#board-picker"
    return render(request, template, context)


def _item(request: HttpRequest, public_id, pk: int) -> tuple[Board, BoardItem]:
    board = access.get_editable_board_or_404(request.user, public_id)
    item = BoardItem.objects.filter(board=board, pk=pk).first()
    if item is None:
        raise Http404("Not on this board")
    return board, item


@require_POST
def board_item_move(request: HttpRequest, public_id, pk: int) -> HttpResponse:
    """Swap the clip with its neighbour above (`direction=up`) or below (`down`) among the
    clips the owner sees."""
    board, item = _item(request, public_id, pk)
    order = [g.board_item for g in board_clips(board, request.user)]
    index = next((i for i, it in enumerate(order) if it.pk == item.pk), None)
    step = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if index is not None and step and 0 <= index + step < len(order):
        other = order[index + step]
        with transaction.atomic():
            # Renumber the whole board (small) so equal positions left by older rows can't
            # make a swap a no-op.
            order[index], order[index + step] = other, item
            for position, it in enumerate(order, start=1):
                BoardItem.objects.filter(pk=it.pk).update(position=position)
    return redirect(f"{reverse('board-detail', args=[board.public_id])}#item-{item.pk}")


@require_POST
def board_item_remove(request: HttpRequest, public_id, pk: int) -> HttpResponse:
    board, item = _item(request, public_id, pk)
    item.delete()
    messages.success(request, "Removed from the board. The clip itself is untouched.")
    return redirect("board-detail", board.public_id)


# ---------------------------------------------------------------------------------------
# The board's zip: the gallery's zip, plus each clip's review in the manifest


REVIEW_FIELDS = ["board_position", "review_state", "rating_avg", "rating_count", "comment_count"]


class ReviewManifest:
    """What a board's zip adds to the gallery zip (galleries.zips.ZipExtras): review columns in
    the manifest, and comments.json with each clip's comments, ratings and review history.
    Three queries for the whole board, whatever its size, all before streaming starts."""

    fields = REVIEW_FIELDS

    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}
        self.clips: list[dict] = []

    def prepare(self, clips: list[Generation]) -> None:
        details: dict[int, dict] = {}
        for position, gen in enumerate(clips, start=1):
            self.rows[gen.pk] = {
                "board_position": position,
                "review_state": gen.review_state,
                "rating_avg": gen.rating_avg if gen.rating_count else None,
                "rating_count": gen.rating_count,
                "comment_count": gen.comment_count,
            }
            details[gen.pk] = {
                "file": download_name(gen),
                "id": str(gen.public_id),
                "prompt": gen.prompt,
                "review_state": gen.review_state,
                "reviews": [],
                "ratings": [],
                "comments": [],
            }
        ids = list(details)
        for c in Comment.objects.filter(generation_id__in=ids).select_related("author"):
            details[c.generation_id]["comments"].append(
                {
                    "author": c.author.get_username(),
                    "body": c.body,
                    "at_seconds": c.at_seconds,
                    "created_at": iso_time(c.created_at),
                    "edited_at": iso_time(c.edited_at),
                }
            )
        for r in Rating.objects.filter(generation_id__in=ids).select_related("member"):
            details[r.generation_id]["ratings"].append(
                {"member": r.member.get_username(), "stars": r.stars}
            )
        for r in Review.objects.filter(generation_id__in=ids).select_related("reviewer"):
            details[r.generation_id]["reviews"].append(
                {
                    "state": r.state,
                    "note": r.note,
                    "reviewer": r.reviewer.get_username() if r.reviewer else None,
                    "at": iso_time(r.created_at),
                }
            )
        self.clips = list(details.values())

    def row(self, gen: Generation) -> dict:
        return self.rows.get(gen.pk, {})

    def files(self) -> dict[str, str]:
        return {"comments.json": json.dumps(self.clips, indent=2, ensure_ascii=False)}


@require_GET
def board_zip(request: HttpRequest, public_id) -> HttpResponse:
    board = access.get_board_or_404(request.user, public_id)
    # The board's clips the member may see, in the board's order (the join that filters
    # by board also gives each clip its position).
    clips = (
        Generation.objects.visible_to(request.user)
        .filter(board_items__board=board)
        .annotate(board_position=F("board_items__position"), board_item_id=F("board_items__id"))
        .order_by("board_position", "board_item_id")
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    name = slugify(board.name)[:40] or "board"
    return zip_response(request, clips, f"kling-board-{name}-{stamp}.zip", ReviewManifest())


# ---------------------------------------------------------------------------------------
# Compare


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    """`?g=<id>&g=<id>…`: two to four finished clips side by side, in the order given."""
    wanted: list[uuid.UUID] = []
    bad = 0
    for raw in request.GET.getlist("g"):
        try:
            gid = uuid.UUID(raw)
        except ValueError:
            bad += 1
            continue
        if gid not in wanted:
            wanted.append(gid)
    found = {
        g.public_id: g
        for g in Generation.objects.visible_to(request.user)
        .for_cards(request.user)
        .filter(public_id__in=wanted[: COMPARE_MAX * 2], status=Status.SUCCEEDED)
        .exclude(video="")
    }
    clips = [found[gid] for gid in wanted if gid in found]
    problems = []
    if bad or len(clips) < len(wanted[: COMPARE_MAX * 2]):
        problems.append(
            "Some of the chosen clips can't be found or aren't finished; they are left out."
        )
    if len(clips) > COMPARE_MAX:
        problems.append(
            f"Compare shows up to {COMPARE_MAX} clips: the first {COMPARE_MAX} are here."
        )
        clips = clips[:COMPARE_MAX]
    if len(clips) < COMPARE_MIN:
        problems.append(f"Pick {COMPARE_MIN} to {COMPARE_MAX} finished clips to compare.")
    back = next_url(request, reverse("gallery"), field="back")
    context = {
        "clips": clips if len(clips) >= COMPARE_MIN else [],
        "problems": problems,
        "back": back,
    }
    return render(request, "generations/compare.html", context)
