"""The inbox: what other members did to a member's clips (comments, mentions, ratings,
reviews, boards), an unread count in the header, and optional email.

The header's count is polled by htmx only while the page is visible (static/js/review.js)
and slowly; the poll sends the count it shows and gets 204 (nothing to swap) while that is
still true, so an idle tab costs one small indexed COUNT every POLL_SECONDS.
"""

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_POST

from .. import access
from ..models import Board, Comment, Generation, InboxPreference, Notification, Verb

log = logging.getLogger(__name__)
POLL_SECONDS = 20  # the header count's poll; static/js/review.js reads it from the page
INBOX_PAGE = 50


def notify(
    recipient,
    actor,
    verb: str,
    *,
    generation: Generation | None = None,
    board: Board | None = None,
    comment: Comment | None = None,
    detail: str = "",
) -> Notification | None:
    """Tell `recipient` what `actor` did; nothing for one's own actions or for a clip the
    recipient may not see. Call inside the writer's transaction: the email goes on commit."""
    if recipient.pk == getattr(actor, "pk", None) or (
        generation is not None and not access.can_see(recipient, generation)
    ):
        return None
    note = Notification.objects.create(
        recipient=recipient,
        actor=actor,
        verb=verb,
        generation=generation,
        board=board,
        comment=comment,
        detail=detail[:200],
    )
    if email_available() and recipient.email and _wants_email(recipient):
        transaction.on_commit(lambda: _send_email(note))
    return note


def email_available() -> bool:
    """Whether this server sends mail at all (settings.MAILERS: SMTP, or the console in
    development)."""
    return "default" in getattr(settings, "MAILERS", {})


def _wants_email(member) -> bool:
    return InboxPreference.objects.filter(member=member, email=True).exists()


def link_for(note: Notification) -> str:
    """Where an inbox row leads: the clip (at the moment, for a pinned comment) or the board."""
    if note.generation_id:
        url = reverse("generation-detail", args=[note.generation.public_id])
        if note.comment_id:
            if note.comment.at_seconds is not None:
                url += f"?t={note.comment.at_seconds:g}"
            url += f"#comment-{note.comment_id}"
        return url
    if note.board_id:
        return reverse("board-detail", args=[note.board.public_id])
    return reverse("inbox")


def sentence(note: Notification) -> str:
    """'bob commented on “A fox in snow”' — plain text, for the page and the email."""
    actor = note.actor.get_username() if note.actor else "Someone"
    what = ""
    if note.generation_id:
        what = f"“{Truncator(note.generation.prompt).chars(60)}”"
    if note.verb == Verb.BOARDED:
        board = note.board.name if note.board_id else note.detail
        return f"{actor} added your clip {what} to the board “{board}”"
    if note.verb == Verb.RATED:
        return f"{actor} rated your clip {what} {note.detail}"
    if note.verb == Verb.REVIEWED:
        return f"{actor} reviewed your clip {what}: {note.detail}"
    if note.verb == Verb.MENTIONED:
        return f"{actor} mentioned you on {what}"
    return f"{actor} commented on your clip {what}"


def _send_email(note: Notification) -> None:
    link = link_for(note)
    if settings.SITE_URL:
        link = settings.SITE_URL + link
    body = sentence(note)
    if note.comment_id:
        body += f":\n\n{note.comment.body}"
    try:
        send_mail(
            Truncator(sentence(note)).chars(100),
            f"{body}\n\n{link}\n\nTurn these emails off in your inbox.",
            None,  # DEFAULT_FROM_EMAIL
            [note.recipient.email],
        )
    except OSError:  # a mail server that is down must not turn a comment into an error
        log.warning("inbox email to member %s not sent", note.recipient_id, exc_info=True)


# ---------------------------------------------------------------------------------------
# Queries


def _visible_notes(user):
    """The member's notifications about things they may still see: a clip made private
    since then drops out (its prompt is no longer theirs to read)."""
    return Notification.objects.filter(
        Q(generation=None) | access.clip_rule(user, via="generation__"), recipient=user
    )


def unread_count(user) -> int:
    return _visible_notes(user).filter(read_at=None).count()


# ---------------------------------------------------------------------------------------
# Views


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = InboxPreference
        fields = ["email"]


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    notes = list(
        _visible_notes(request.user).select_related("actor", "generation", "board", "comment")[
            :INBOX_PAGE
        ]
    )
    for note in notes:
        note.link = link_for(note)
        note.text = sentence(note)
    pref = InboxPreference.objects.filter(member=request.user).first()
    context = {
        "notifications": notes,
        "unread": sum(1 for n in notes if n.read_at is None),
        "preference_form": PreferenceForm(instance=pref),
        "has_email": bool(request.user.email),
        "email_available": email_available(),
    }
    return render(request, "generations/inbox.html", context)


@require_POST
def inbox_mark_read(request: HttpRequest) -> HttpResponse:
    Notification.objects.filter(recipient=request.user, read_at=None).update(read_at=timezone.now())
    messages.success(request, "All caught up.")
    return redirect("inbox")


@require_POST
def inbox_preferences(request: HttpRequest) -> HttpResponse:
    pref, _ = InboxPreference.objects.get_or_create(member=request.user)
    form = PreferenceForm(request.POST, instance=pref)
    form.is_valid()  # one checkbox: any value is valid (absent means off)
    form.save()
    messages.success(
        request, "Emails are on." if pref.email else "Emails are off: the inbox still has it all."
    )
    return redirect("inbox")


@require_GET
def inbox_unread(request: HttpRequest) -> HttpResponse:
    """The header's inbox link. `?n=` is the count the page shows: 204 while unchanged."""
    count = unread_count(request.user)
    if request.GET.get("n") == str(count):
        return HttpResponse(status=204)
    context = {"unread": count, "poll_seconds": POLL_SECONDS}
    return render(request, "generations/_inbox_link.html", context)
