"""Team review on the clip's page and in the header: the panels (each one line in a
template), a comment's text as safe HTML, and the inbox link."""

from django import template
from django.utils.html import format_html, urlize
from django.utils.safestring import SafeString, mark_safe

from generations.models import Board, BoardItem
from generations.review import inbox
from generations.review import notes as review

register = template.Library()


@register.filter
def comment_html(body: str, members: set[str] | None = None) -> SafeString:
    """Plain text in, HTML out: everything escaped, links made clickable (rel=nofollow),
    `@name` of a real member marked as a mention. Line breaks are kept by CSS."""
    out = []
    for i, part in enumerate(review.MENTION.split(body)):
        if i % 2:  # the captured name of "@name"
            if members and part in members:
                out.append(format_html('<span class="mention">@{}</span>', part))
            else:
                out.append(format_html("@{}", part))
        else:
            out.append(urlize(part, nofollow=True, autoescape=True))
    return mark_safe("".join(out))  # every part above is escaped


@register.filter
def moment(seconds: float | None) -> str:
    return review.moment_label(seconds)


@register.inclusion_tag("generations/_comments_panel.html", takes_context=True)
def comments_panel(context) -> dict:
    request = context["request"]
    return {"request": request, **review.comments_context(request, context["generation"])}


@register.inclusion_tag("generations/_review_panel.html", takes_context=True)
def review_panel(context) -> dict:
    request = context["request"]
    return {"request": request, **review.review_context(request, context["generation"])}


@register.inclusion_tag("generations/_boards_panel.html", takes_context=True)
def boards_panel(context) -> dict:
    request, gen = context["request"], context["generation"]
    on = BoardItem.objects.filter(generation=gen, board__in=Board.objects.visible_to(request.user))
    return {
        "request": request,
        "generation": gen,
        "on_boards": [item.board for item in on.select_related("board")],
        "my_boards": list(Board.objects.editable_by(request.user).order_by("name", "id")),
    }


@register.inclusion_tag("generations/_inbox_link.html", takes_context=True)
def inbox_link(context) -> dict:
    request = context["request"]
    return {
        "request": request,
        "unread": inbox.unread_count(request.user),
        "poll_seconds": inbox.POLL_SECONDS,
    }
