from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from . import capabilities as caps
from . import costs
from .models import ApiKey, Generation, MemberLimits, Price, TeamLimits


class ApiKeyForm(forms.ModelForm):
    # The stored secret is never rendered back into the page.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Paste the CometAPI key.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "secret", "is_active", "concurrency_limit"]
        # Never read from the row (a key that can't be decrypted must still open here, to be
        # fixed); clean_secret sets a new one.
        exclude = ["secret"]  # noqa: DJ006 (declared above, never read from the row)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # only a stored key has a current one to keep
            self.fields[
                "secret"
            ].help_text = "Paste a new key, or leave empty to keep the current one."

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"].strip()
        if not secret:
            if self.instance.pk:
                return ""  # left unloaded, so saving the row keeps the stored one
            raise forms.ValidationError("A new key needs its secret.")
        self.instance.secret = secret
        return secret


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "hint",
        "is_active",
        "is_healthy",
        "unhealthy_since",
        "concurrency_limit",
    ]
    list_filter = ["is_active", "is_healthy"]
    readonly_fields = ["hint", "is_healthy", "unhealthy_since", "last_error", "created_at"]
    actions = ["mark_healthy"]

    @admin.action(description="Mark healthy again (after fixing the key or its billing)")
    def mark_healthy(self, request, queryset) -> None:
        n = queryset.update(is_healthy=True, unhealthy_since=None, last_error="")
        self.message_user(request, f"{n} key(s) will be used again.", messages.SUCCESS)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = [
        "short_prompt",
        "owner",
        "status",
        "choice",
        "duration",
        "visibility",
        "created_at",
        "units",
        "cost",
    ]
    list_filter = ["status", "model_name", "mode", "duration", "visibility"]
    search_fields = ["prompt", "task_id", "external_task_id", "owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    # The callback token stays out: whoever holds it can make us read the task at will.
    readonly_fields = [
        f.name for f in Generation._meta.fields if f.name not in {"visibility", "callback_token"}
    ]

    @admin.display(description="Prompt")
    def short_prompt(self, obj: Generation) -> str:
        return obj.prompt[:60]

    @admin.display(description="Model", ordering="model_name")
    def choice(self, obj: Generation) -> str:
        return caps.choice_label(obj.model_name, obj.mode)

    @admin.display(description="Cost")
    def cost(self, obj: Generation) -> str:
        return costs.cost_label(obj, obj.price_usd)

    def has_add_permission(self, request) -> bool:
        return False  # generations start in the studio, where they are validated


class PriceForm(forms.ModelForm):
    # Only choices the studio offers, so a typo can't leave a choice without its price.
    model_name = forms.ChoiceField(
        choices=[(k, f"{k} ({m.label})") for k, m in caps.MODELS.items()]
    )
    mode = forms.ChoiceField(
        choices=[("", "— (model has no std/pro split)"), *caps.MODE_LABELS.items()], required=False
    )
    duration = forms.ChoiceField(choices=list(caps.DURATIONS.items()))

    class Meta:
        model = Price
        fields = ["model_name", "mode", "duration", "usd", "units", "confirmed"]


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """The price table behind the studio's cost estimate (a choice without a row shows
    "no published price")."""

    form = PriceForm
    list_display = ["model_name", "mode", "duration", "usd", "units", "confirmed"]
    list_editable = ["usd", "units", "confirmed"]
    list_filter = ["confirmed", "model_name", "mode", "duration"]
    ordering = ["model_name", "mode", "duration"]


# ---------------------------------------------------------------------------------------
# Budgets: a member's limits inline on their user page; the team's on its own one-row page.


class MemberLimitsInline(admin.StackedInline):
    model = MemberLimits
    can_delete = False
    extra = 1
    max_num = 1
    verbose_name_plural = "Budget limits (empty: no limit)"


User = get_user_model()
if admin.site.is_registered(User):
    UserAdminBase = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)
else:
    UserAdminBase = DjangoUserAdmin


@admin.register(User)
class MemberAdmin(UserAdminBase):
    """Django's user admin with the member's budget limits."""

    inlines = [*UserAdminBase.inlines, MemberLimitsInline]


@admin.register(TeamLimits)
class TeamLimitsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "monthly_spend"]

    def has_add_permission(self, request) -> bool:
        return not TeamLimits.objects.filter(pk=1).exists()  # one row (a migration makes it)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The site's own name on every admin page instead of "Django administration".
admin.site.site_header = "Kling Studio administration"
admin.site.site_title = "Kling Studio admin"
admin.site.index_title = "Keys, members, generations and prices"
