"""Login throttling: the two hooks django-axes calls (see the AXES_* settings).

`client_ip` decides which address a login attempt counts against; `lockout_response` is the
login page again, saying when the member may try again, instead of axes' bare text.
"""

import ipaddress
from datetime import datetime

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def client_ip(request: HttpRequest) -> str:
    """The client's address: the proxy's header when CLIENT_IP_HEADER names one (its last
    entry, the one our proxy added; earlier ones come from the client and prove nothing),
    else the connection's address."""
    if header := settings.CLIENT_IP_HEADER:
        value = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        candidate = value.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass  # missing or garbled: count it against the proxy's address
    return request.META.get("REMOTE_ADDR", "")


def locked_until(request: HttpRequest, username: str) -> datetime:
    """When this username may log in from this address again: the last failure that
    counted plus the cool-off (tries while locked out don't move it)."""
    cool_off = get_cool_off(request)
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=client_ip(request))
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    return (last or timezone.now()) + cool_off


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    username = get_client_username(request, credentials) or ""
    until = locked_until(request, username)
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_until": until,
        "locked_username": username,
    }
    response = render(request, "registration/login.html", context, status=429)
    seconds = max(1, int((until - timezone.now()).total_seconds()))
    response["Retry-After"] = str(seconds)
    return response
