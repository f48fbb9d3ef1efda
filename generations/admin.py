from decimal import Decimal

from cryptography.fernet import InvalidToken
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, ExpressionWrapper, F, OuterRef, Subquery, Sum, TextField
from django.db.models.functions import Coalesce
from django.utils.text import Truncator

from .accounts import AdminLoginForm
from .crypto import fernet
from .governance import audit, budgets, costs, keypool
from .kling import capabilities as caps
from .models import (
    HOLDS_SLOT,
    ApiKey,
    AuditEvent,
    Entry,
    Generation,
    LedgerEntry,
    MemberLimits,
    Price,
    TeamLimits,
)


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
            self.fields["secret"].help_text = (
                "Paste a new key, or leave empty to keep the current one. A new key rotates "
                "this one: new jobs use it at once, jobs already running finish with the old "
                "one, which is then forgotten."
            )

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"].strip()
        if not secret:
            if self.instance.pk:
                return ""  # left unloaded, so saving the row keeps the stored one
            raise forms.ValidationError("A new key needs its secret.")
        if any(c.isspace() for c in secret) or len(secret) > 500:
            raise forms.ValidationError("That does not look like an API key (spaces or too long).")
        if not self.instance.pk:
            self.instance.secret = secret
        # A stored key's new secret is a rotation: ApiKeyAdmin.save_model hands it to keypool.
        return secret


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "name",
        "secret_mask",
        "is_active",
        "is_healthy",
        "concurrency_limit",
        "in_flight",
        "jobs_this_month",
        "spend_this_month",
        "short_last_error",
        "last_probe",
    ]
    list_filter = ["is_active", "is_healthy"]
    readonly_fields = [
        "hint",
        "is_healthy",
        "unhealthy_since",
        "last_error",
        "last_probe_at",
        "last_probe_result",
        "created_at",
    ]
    actions = ["mark_healthy", "disable_keys", "enable_keys"]

    def get_queryset(self, request):
        """The list's figures as correlated subqueries: one query whatever the number of keys."""
        month = budgets.month_start()

        def per_key(rows, value, key="api_key"):
            return Subquery(
                rows.filter(**{key: OuterRef("pk")})
                .order_by()
                .values(key)
                .annotate(v=value)
                .values("v")
            )

        # From the ledger (models/ledger.py): a key's jobs are the tasks it paid for (their
        # `sent`), its spend their prices less the refunds of those that failed upstream.
        this_month = LedgerEntry.objects.filter(booked_at__gte=month)

        def per_key_entries(kind, value):
            return per_key(this_month.filter(kind=kind), value, key="key")

        return (
            super()
            .get_queryset(request)
            .annotate(
                n_in_flight=Coalesce(
                    per_key(Generation.objects.filter(status__in=HOLDS_SLOT), Count("id")), 0
                ),
                n_jobs_month=Coalesce(per_key_entries(Entry.SENT, Count("id")), 0),
                spend_month=Coalesce(per_key_entries(Entry.SENT, Sum("price")), Decimal(0))
                + Coalesce(per_key_entries(Entry.REFUND, Sum("amount")), Decimal(0)),
                # The stored token, undecrypted: secret_mask decrypts it and survives a
                # key that can't be (the secret itself stays deferred, see ApiKeyManager).
                secret_token=ExpressionWrapper(F("secret"), output_field=TextField()),
            )
        )

    @admin.display(description="Secret")
    def secret_mask(self, obj: ApiKey) -> str:
        try:
            return keypool.mask(fernet().decrypt(obj.secret_token.encode()).decode())
        except InvalidToken:
            return "(cannot be decrypted)"

    @admin.display(description="In flight now", ordering="n_in_flight")
    def in_flight(self, obj: ApiKey) -> int:
        return obj.n_in_flight

    @admin.display(description="Jobs this month", ordering="n_jobs_month")
    def jobs_this_month(self, obj: ApiKey) -> int:
        return obj.n_jobs_month

    @admin.display(description="Spend this month", ordering="spend_month")
    def spend_this_month(self, obj: ApiKey) -> str:
        return costs.usd(obj.spend_month or Decimal(0))

    @admin.display(description="Last error")
    def short_last_error(self, obj: ApiKey) -> str:
        return Truncator(obj.last_error).chars(80) if obj.last_error else "—"

    @admin.display(description="Last probe", ordering="last_probe_at")
    def last_probe(self, obj: ApiKey) -> str:
        if obj.last_probe_at is None:
            return "—"
        return f"{obj.last_probe_at:%Y-%m-%d %H:%M} · {Truncator(obj.last_probe_result).chars(60)}"

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        new_secret = form.cleaned_data.get("secret", "")
        if not change:
            super().save_model(request, obj, form, change)
            audit.record(request.user, audit.KEY_ADDED, obj, {"mask": keypool.mask(new_secret)})
            return
        stored = ApiKey.objects.get(pk=obj.pk)
        super().save_model(request, obj, form, change)  # the secret stays unloaded: not saved
        if stored.is_active != obj.is_active:
            action = audit.KEY_ENABLED if obj.is_active else audit.KEY_DISABLED
            audit.record(request.user, action, obj, {})
        if new_secret:
            rotated = keypool.rotate(obj, new_secret)
            obj.secret_version = rotated.secret_version
            audit.record(
                request.user,
                audit.KEY_ROTATED,
                obj,
                {"mask": keypool.mask(new_secret), "version": obj.secret_version},
            )

    @admin.action(description="Mark healthy again (after fixing the key or its billing)")
    def mark_healthy(self, request, queryset) -> None:
        changed = keypool.mark_healthy(queryset)
        for key in changed:
            audit.record(request.user, audit.KEY_MARKED_HEALTHY, key, {})
        self.message_user(request, f"{len(changed)} key(s) will be used again.", messages.SUCCESS)

    @admin.action(description="Disable (no new jobs; running ones finish)")
    def disable_keys(self, request, queryset) -> None:
        changed = keypool.set_active(queryset, False)
        for key in changed:
            audit.record(request.user, audit.KEY_DISABLED, key, {})
        self.message_user(request, f"{len(changed)} key(s) disabled.", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable_keys(self, request, queryset) -> None:
        changed = keypool.set_active(queryset, True)
        for key in changed:
            audit.record(request.user, audit.KEY_ENABLED, key, {})
        self.message_user(request, f"{len(changed)} key(s) enabled.", messages.SUCCESS)


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


def _named_filter(field: str, title: str, names: dict[str, str]) -> type[admin.SimpleListFilter]:
    """A list filter on `field` that shows each value by its name ("Kling 2.5 Turbo",
    "Standard", "5 s"), not the id stored."""

    class NamedFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request, model_admin):
            return list(names.items())

        def queryset(self, request, queryset):
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    NamedFilter.title = title
    return NamedFilter


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """The price table behind the studio's cost estimate (a choice without a row shows
    "no published price")."""

    form = PriceForm
    # Readable names, and few narrow columns: the list fits a laptop screen beside its filters.
    list_display = ["choice", "length", "usd", "units", "confirmed"]
    list_display_links = ["choice"]
    list_editable = ["usd", "units", "confirmed"]
    list_filter = [
        "confirmed",
        _named_filter("model_name", "model", {k: m.label for k, m in caps.MODELS.items()}),
        _named_filter("mode", "mode", caps.MODE_NAMES),
        _named_filter("duration", "length", caps.DURATIONS),
    ]
    ordering = ["model_name", "mode", "duration"]

    @admin.display(description="model and mode", ordering="model_name")
    def choice(self, obj: Price) -> str:
        return caps.choice_label(obj.model_name, obj.mode)

    @admin.display(description="length", ordering="duration")
    def length(self, obj: Price) -> str:
        return caps.DURATIONS.get(obj.duration, obj.duration)

    def get_changelist_form(self, request, **kwargs):
        # Narrow number boxes: a price has at most five digits and three decimals.
        narrow = forms.NumberInput(attrs={"class": "vIntegerField", "step": "any"})
        rows = super().get_changelist_form(
            request, widgets={"usd": narrow, "units": narrow}, **kwargs
        )

        class PriceRowForm(rows):
            """Admin's list draws its boxes without labels: each names its row instead."""

            def __init__(self, *args, **kw) -> None:
                super().__init__(*args, **kw)
                price = self.instance
                row = f"{caps.choice_label(price.model_name, price.mode)}, {price.duration} s"
                for name in ("usd", "units", "confirmed"):
                    field = self.fields[name]
                    field.widget.attrs["aria-label"] = f"{field.label} of {row}"

        return PriceRowForm

    def save_model(self, request, obj, form, change) -> None:
        fields = ["usd", "units", "confirmed"]
        before = Price.objects.filter(pk=obj.pk).values(*fields).first() or {} if change else {}
        super().save_model(request, obj, form, change)
        diff = audit.changes(before, {f: getattr(obj, f) for f in fields})
        if diff:
            audit.record(request.user, audit.PRICE_CHANGED, obj, diff)

    def delete_model(self, request, obj) -> None:
        audit.record(request.user, audit.PRICE_CHANGED, obj, {"deleted": True})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        for price in queryset:
            audit.record(request.user, audit.PRICE_CHANGED, price, {"deleted": True})
        super().delete_queryset(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The trail, read-only: nobody adds, edits or deletes an event."""

    list_display = ["at", "actor", "action", "target", "details"]
    list_filter = ["action"]
    search_fields = ["actor", "target"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    """The ledger, read-only: what each member's jobs charged and refunded, kept when the
    clip, the member or the key is deleted (models/ledger.py). A member's page links here."""

    list_display = [
        "booked_at",
        "kind",
        "member_name",
        "key_name",
        "model_name",
        "mode",
        "duration",
        "price",
        "amount",
        "jobs",
        "outcome",
        "units",
    ]
    # Not by outcome: charges and `sent` have none, and admin would draw that choice as a link
    # without a name.
    list_filter = ["kind", "model_name"]
    search_fields = ["member_name", "key_name", "=job"]
    date_hierarchy = "booked_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# ---------------------------------------------------------------------------------------
# Budgets: a member's limits inline on their user page; the team's on its own one-row page.


def limits_of(obj) -> dict:
    return {"jobs_per_day": obj.jobs_per_day, "monthly_spend": obj.monthly_spend}


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

    def save_model(self, request, obj, form, change) -> None:
        with audit.acting_as(request.user):  # a member made staff is recorded by a signal
            super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not MemberLimits:
            return super().save_formset(request, form, formset, change)
        before = {
            f.instance.pk: limits_of(MemberLimits.objects.get(pk=f.instance.pk))
            for f in formset.forms
            if f.instance.pk and MemberLimits.objects.filter(pk=f.instance.pk).exists()
        }
        super().save_formset(request, form, formset, change)
        for limits in formset.new_objects + [o for o, _ in formset.changed_objects]:
            diff = audit.changes(before.get(limits.pk, {}), limits_of(limits))
            if diff:
                audit.record(request.user, audit.LIMITS_CHANGED, limits.user, diff)


@admin.register(TeamLimits)
class TeamLimitsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "monthly_spend"]

    def save_model(self, request, obj, form, change) -> None:
        before = TeamLimits.objects.filter(pk=1).values("monthly_spend").first() or {}
        super().save_model(request, obj, form, change)
        diff = audit.changes(before, {"monthly_spend": obj.monthly_spend})
        if diff:
            audit.record(request.user, audit.LIMITS_CHANGED, "the team", diff)

    def has_add_permission(self, request) -> bool:
        return not TeamLimits.objects.filter(pk=1).exists()  # one row (a migration makes it)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# The site's own name on every admin page instead of "Django administration".
admin.site.site_header = "Kling Studio administration"
admin.site.login_form = AdminLoginForm
admin.site.site_title = "Kling Studio admin"
admin.site.index_title = "Keys, members, generations and prices"
