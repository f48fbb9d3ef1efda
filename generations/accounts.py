"""The account pages under /accounts/: Django's auth views, with password reset offered only
when the studio can send mail (settings.PASSWORD_RESET_ENABLED). Without mail, the reset
pages answer 404 and the login page says to ask an admin, instead of a form whose post
tries an SMTP server that isn't there."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path

from .web import is_local_path


def password_reset_enabled() -> bool:
    return settings.PASSWORD_RESET_ENABLED


def _only_with_email(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_not_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not password_reset_enabled():
            raise Http404("Password reset needs email, which this studio has not set up.")
        return view(request, *args, **kwargs)

    return wrapper


class NoOverlongUsername:
    """A username longer than any member's can't log in: refused as a wrong password before
    authentication, so the throttle (django-axes) never writes it (on PostgreSQL its
    255-character column made that a 500)."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        if len(username) > self.fields["username"].max_length:
            raise self.get_invalid_login_error()
        return super().clean()


class LoginForm(NoOverlongUsername, AuthenticationForm):
    pass


class AdminLoginForm(NoOverlongUsername, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    form_class = LoginForm

    def get_redirect_url(self) -> str:
        """`next` only when it is a path on this site: Django's own check lets a bare word
        through ("x"), which would land on a 404 under /accounts/login/."""
        url = super().get_redirect_url()
        return url if is_local_path(url) else ""

    def get_context_data(self, **kwargs) -> dict:
        return {
            **super().get_context_data(**kwargs),
            "password_reset_enabled": password_reset_enabled(),
        }


urlpatterns = [
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path(
        "password_reset/",
        _only_with_email(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "password_reset/done/",
        _only_with_email(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        _only_with_email(auth_views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        _only_with_email(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
]
