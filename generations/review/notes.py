"""Team review on a clip's page: comments pinned to moments, ratings and review states.

Everything here goes through the clip's own access check (`access.get_clip_or_404`):
whoever may not see a clip gets the same 404 from its comments, rating and review URLs as
from its page. Each action works as a plain form post (then a redirect back to the clip) and, with
htmx, answers its panel alone for an in-place swap.

The generation row carries its tallies (rating_avg, rating_count, comment_count) and its
review state, so gallery pages filter and sort on them without a join: every change here
locks that row first, then recounts, so two members rating at once can't leave a stale
average.
"""

import re
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Avg, Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from .. import access
from ..models import (
    COMMENT_MAX,
    RATING_CHOICES,
    Comment,
    Generation,
    Rating,
    Review,
    ReviewState,
    Verb,
)
from ..validators import VisibleTextValidator
from ..web import HtmxHttpRequest
from . import inbox

REVIEWERS_GROUP = "Reviewers"  # created by migration 0012; admins manage its members
# "@bob" but not "bob@example.com" or ".../@bob" in a link.
MENTION = re.compile(r"(?<![\w./])@([\w.+-]+)")


def is_reviewer(user) -> bool:
    return user.is_authenticated and user.groups.filter(name=REVIEWERS_GROUP).exists()


# ---------------------------------------------------------------------------------------
# Forms


def parse_moment(text: str) -> float:
    """'0:03' → 3.0, '1:02:03' → 3723.0, '2.5' → 2.5; ValueError for anything else."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
        raise ValueError(text)
    *whole, last = parts
    seconds = float(last)
    for part in whole:
        if not part.strip().isdigit():
            raise ValueError(text)
    if whole and not 0 <= seconds < 60:
        raise ValueError(text)
    for power, part in enumerate(reversed(whole), start=1):
        seconds += int(part) * 60**power
    if not 0 <= seconds < 86400:  # also rejects nan and inf
        raise ValueError(text)
    return seconds


def clip_seconds(gen: Generation) -> float:
    """The clip's length: measured when stored, else the length that was asked for."""
    if gen.video_duration:
        return gen.video_duration
    try:
        return float(gen.duration)
    except ValueError:
        return 0.0


def moment_label(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


class CommentForm(forms.Form):
    comment = forms.CharField(
        label="Comment",
        max_length=COMMENT_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": COMMENT_MAX}),
        validators=[VisibleTextValidator("The comment")],
        error_messages={
            "required": "Write something first: the comment is empty.",
            "max_length": (
                "Comments can be at most %(limit_value)d characters (this one has %(show_value)d)."
            ),
        },
        help_text="Plain text; links become clickable; @name tells a member.",
    )
    at = forms.CharField(
        label="At (m:ss, optional)",
        required=False,
        max_length=12,
        # No placeholder: a grey "0:03" read as a value the comment would be pinned to.
        widget=forms.TextInput(attrs={"size": 6, "inputmode": "decimal"}),
        help_text="Pins the comment to that moment of the clip.",
    )

    def __init__(self, *args, length: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.length = length

    def clean_comment(self) -> str:
        return self.cleaned_data["comment"].replace("\r\n", "\n").replace("\r", "\n")

    def clean_at(self) -> float | None:
        text = self.cleaned_data["at"]
        if not text:
            return None
        try:
            seconds = parse_moment(text)
        except ValueError:
            raise forms.ValidationError("Write the moment as m:ss, for example 0:03.") from None
        if seconds > self.length + 0.5:  # the player's end may round up past the length
            raise forms.ValidationError(
                f"The clip is only {moment_label(self.length)} long; pick a moment within it."
            )
        return min(seconds, self.length)


class RatingForm(forms.Form):
    rating = forms.TypedChoiceField(
        label="Rating",
        choices=[(n, f"{n} star{'s' if n > 1 else ''}") for n, _ in RATING_CHOICES],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Pick 1 to 5 stars.",
            "invalid_choice": "A rating is 1 to 5 stars.",
        },
    )


class ReviewForm(forms.Form):
    state = forms.ChoiceField(
        label="Review state",
        choices=ReviewState.choices,
        error_messages={"invalid_choice": "Pick one of the review states."},
    )
    note = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": COMMENT_MAX}),
        validators=[VisibleTextValidator("The note")],
    )


# ---------------------------------------------------------------------------------------
# The panels' contexts (also used by the template tags that put them on the clip's page)


def _detail_url(gen: Generation, anchor: str = "") -> str:
    url = reverse("generation-detail", args=[gen.public_id])
    return f"{url}#{anchor}" if anchor else url


def comments_context(request: HttpRequest, gen: Generation, form: CommentForm | None = None):
    comments = list(gen.comments.select_related("author"))
    return {
        "generation": gen,
        "comments": comments,
        "comment_form": form or CommentForm(length=clip_seconds(gen)),
        "clip_seconds": clip_seconds(gen),
        "members": _mentionable(gen, comments),
        "can_moderate": request.user.is_staff,
    }


def review_context(
    request: HttpRequest,
    gen: Generation,
    rating_form: RatingForm | None = None,
    review_form: ReviewForm | None = None,
):
    mine = Rating.objects.filter(generation=gen, member=request.user).first()
    history = list(gen.reviews.select_related("reviewer")[:20])
    reviewer = is_reviewer(request.user)
    if review_form is None and reviewer:
        review_form = ReviewForm(initial={"state": gen.review_state})
    return {
        "generation": gen,
        "my_rating": mine.stars if mine else None,
        "rating_form": rating_form or RatingForm(initial={"rating": mine.stars if mine else None}),
        "review_form": review_form,
        "is_reviewer": reviewer,
        "latest_review": history[0] if history else None,
        "history": history,
    }


def _mentionable(gen: Generation, comments: list[Comment]) -> set[str]:
    """Usernames that a comment's @name may refer to (links a mention only if it is real)."""
    names = {m for c in comments for m in MENTION.findall(c.body)}
    if not names:
        return set()
    User = get_user_model()
    field = User.USERNAME_FIELD
    return set(
        User.objects.filter(is_active=True, **{f"{field}__in": names}).values_list(field, flat=True)
    )


# ---------------------------------------------------------------------------------------
# Writes: each locks the clip's row, changes, recounts


def _lock(gen: Generation) -> None:
    """Serialise review writes on one clip (see the module docstring)."""
    list(Generation.objects.select_for_update().filter(pk=gen.pk).values_list("pk"))


def _recount(gen: Generation) -> None:
    ratings = Rating.objects.filter(generation=gen).aggregate(avg=Avg("stars"), n=Count("id"))
    gen.rating_avg = round(ratings["avg"] or 0.0, 2)
    gen.rating_count = ratings["n"]
    gen.comment_count = Comment.objects.filter(generation=gen).count()
    Generation.objects.filter(pk=gen.pk).update(
        rating_avg=gen.rating_avg,
        rating_count=gen.rating_count,
        comment_count=gen.comment_count,
    )


def _mentioned_members(gen: Generation, body: str, author) -> list:
    """Members named with @ who can see the clip (a private clip's owner and staff only)."""
    names = set(MENTION.findall(body))
    if not names:
        return []
    field = get_user_model().USERNAME_FIELD
    people = access.members_who_can_see(gen).filter(**{f"{field}__in": names})
    return list(people.exclude(pk=author.pk))


REPLAY_WINDOW = timedelta(seconds=30)  # the same comment again this soon is a resent form


def add_comment(gen: Generation, author, body: str, at_seconds: float | None) -> Comment:
    with transaction.atomic():
        _lock(gen)
        replay = Comment.objects.filter(
            generation=gen,
            author=author,
            body=body,
            at_seconds=at_seconds,
            created_at__gte=timezone.now() - REPLAY_WINDOW,
        ).first()
        if replay is not None:
            return replay
        comment = Comment.objects.create(
            generation=gen, author=author, body=body, at_seconds=at_seconds
        )
        _recount(gen)
        mentioned = _mentioned_members(gen, body, author)
        for member in mentioned:
            inbox.notify(member, author, Verb.MENTIONED, generation=gen, comment=comment)
        if gen.owner_id not in {m.pk for m in mentioned}:
            inbox.notify(gen.owner, author, Verb.COMMENTED, generation=gen, comment=comment)
    return comment


def set_rating(gen: Generation, member, stars: int | None) -> None:
    with transaction.atomic():
        _lock(gen)
        if stars is None:
            Rating.objects.filter(generation=gen, member=member).delete()
        else:
            Rating.objects.update_or_create(
                generation=gen, member=member, defaults={"stars": stars}
            )
        _recount(gen)
        if stars is not None:
            detail = f"{stars} star{'s' if stars > 1 else ''}"
            inbox.notify(gen.owner, member, Verb.RATED, generation=gen, detail=detail)


def set_review(gen: Generation, reviewer, state: str, note: str) -> Review:
    with transaction.atomic():
        _lock(gen)
        review = Review.objects.create(generation=gen, reviewer=reviewer, state=state, note=note)
        Generation.objects.filter(pk=gen.pk).update(review_state=state)
        gen.review_state = state
        inbox.notify(
            gen.owner, reviewer, Verb.REVIEWED, generation=gen, detail=review.get_state_display()
        )
    return review


# ---------------------------------------------------------------------------------------
# Views


def _panel(request: HtmxHttpRequest, template: str, context: dict, *, status: int = 200):
    """The panel alone (htmx swaps it in place), or, without JavaScript, a small page
    holding it: used when a form needs correcting, so nothing typed is lost."""
    if request.htmx:
        # htmx swaps 2xx answers only: a form with errors comes back as 200.
        return render(request, template, context)
    page = {**context, "panel_template": template}
    return render(request, "generations/review_form.html", page, status=status)


@require_POST
def comment_create(request: HtmxHttpRequest, public_id) -> HttpResponse:
    gen = access.get_clip_or_404(request.user, public_id)
    form = CommentForm(request.POST, length=clip_seconds(gen))
    if not form.is_valid():
        return _panel(
            request,
            "generations/_comments_panel.html",
            comments_context(request, gen, form),
            status=422,
        )
    comment = add_comment(gen, request.user, form.cleaned_data["comment"], form.cleaned_data["at"])
    if request.htmx:
        return render(request, "generations/_comments_panel.html", comments_context(request, gen))
    messages.success(request, "Comment posted.")
    return redirect(_detail_url(gen, f"comment-{comment.pk}"))


def _own_comment(request: HttpRequest, gen: Generation, pk: int, *, moderate: bool) -> Comment:
    """The comment on this clip if the member wrote it (or, with moderate, is staff)."""
    comment = Comment.objects.filter(generation=gen, pk=pk).select_related("author").first()
    if comment is None:
        raise Http404("No such comment")
    if comment.author_id != request.user.pk and not (moderate and request.user.is_staff):
        raise Http404("No such comment")  # others' comments can't be changed: nothing to find
    return comment


@require_http_methods(["GET", "POST"])
def comment_edit(request: HtmxHttpRequest, public_id, pk: int) -> HttpResponse:
    """GET: the comment in a form (in place with htmx, a page without). POST: save it."""
    gen = access.get_clip_or_404(request.user, public_id)
    comment = _own_comment(request, gen, pk, moderate=False)
    length = clip_seconds(gen)
    if request.method == "GET":
        form = CommentForm(
            length=length,
            initial={"comment": comment.body, "at": moment_label(comment.at_seconds)},
            auto_id=f"edit-{comment.pk}-%s",
        )
    else:
        form = CommentForm(request.POST, length=length, auto_id=f"edit-{comment.pk}-%s")
        if form.is_valid():
            with transaction.atomic():
                _lock(gen)
                comment.body = form.cleaned_data["comment"]
                comment.at_seconds = form.cleaned_data["at"]
                comment.edited_at = timezone.now()
                comment.save(update_fields=["body", "at_seconds", "edited_at"])
            if request.htmx:
                return render(
                    request, "generations/_comments_panel.html", comments_context(request, gen)
                )
            messages.success(request, "Comment saved.")
            return redirect(_detail_url(gen, f"comment-{comment.pk}"))
    context = {"generation": gen, "comment": comment, "form": form}
    if request.htmx:
        return render(request, "generations/_comment_edit.html", context)
    status = 422 if request.method == "POST" else 200
    return render(request, "generations/comment_edit.html", context, status=status)


@require_POST
def comment_delete(request: HtmxHttpRequest, public_id, pk: int) -> HttpResponse:
    """Authors delete their own comments; staff remove anyone's."""
    gen = access.get_clip_or_404(request.user, public_id)
    comment = _own_comment(request, gen, pk, moderate=True)
    with transaction.atomic():
        _lock(gen)
        comment.delete()
        _recount(gen)
    if request.htmx:
        return render(request, "generations/_comments_panel.html", comments_context(request, gen))
    messages.success(request, "Comment deleted.")
    return redirect(_detail_url(gen, "comments"))


@require_POST
def rating_set(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """Rate 1-5 (`rating`), or clear one's own rating (`clear`). Idempotent."""
    gen = access.get_clip_or_404(request.user, public_id)
    if request.POST.get("clear"):
        set_rating(gen, request.user, None)
        done = "Your rating is cleared."
    else:
        form = RatingForm(request.POST)
        if not form.is_valid():
            context = review_context(request, gen, rating_form=form)
            return _panel(request, "generations/_review_panel.html", context, status=422)
        set_rating(gen, request.user, form.cleaned_data["rating"])
        done = "Rating saved."
    if request.htmx:
        gen.refresh_from_db()
        return render(request, "generations/_review_panel.html", review_context(request, gen))
    messages.success(request, done)
    return redirect(_detail_url(gen, "review"))


@require_POST
def review_set(request: HtmxHttpRequest, public_id) -> HttpResponse:
    """Members of the Reviewers group set the clip's review state, with an optional note."""
    gen = access.get_clip_or_404(request.user, public_id)
    if not is_reviewer(request.user):
        messages.error(request, "Only members of the Reviewers group set review states.")
        detail = _detail_url(gen)
        return HttpResponseClientRedirect(detail) if request.htmx else redirect(detail)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        context = review_context(request, gen, review_form=form)
        return _panel(request, "generations/_review_panel.html", context, status=422)
    set_review(gen, request.user, form.cleaned_data["state"], form.cleaned_data["note"])
    if request.htmx:
        return render(request, "generations/_review_panel.html", review_context(request, gen))
    messages.success(request, f"Review state set: {gen.get_review_state_display()}.")
    return redirect(_detail_url(gen, "review"))
