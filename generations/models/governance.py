"""Money and control: prices, members' and the team's limits, and the audit trail."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Price(models.Model):
    """What one task costs, by model × mode × duration: data admins edit, not code.

    Seeded from CometAPI's published per-task prices (Dec 2025) and Kling's unit table.
    """

    model_name = models.CharField(max_length=40)
    mode = models.CharField(max_length=10, blank=True)  # blank: model has no std/pro split
    duration = models.CharField(max_length=4)
    usd = models.DecimalField("price (USD)", max_digits=8, decimal_places=3)
    units = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # False for prices seeded without a published figure: an admin checks them (admin list).
    confirmed = models.BooleanField(
        default=True, help_text="Untick while the price is a guess an admin must confirm."
    )

    class Meta:
        ordering = ["model_name", "mode", "duration"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_name", "mode", "duration"], name="one_price_per_choice"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.mode or '-'} {self.duration}s: ${self.usd}"


class MemberLimits(models.Model):
    """A member's budget: each limit optional (None: no limit). See governance/budgets.py."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    jobs_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs a day (calendar day). Empty: no limit."
    )
    monthly_spend = models.DecimalField(
        "spend per month (USD)",
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Spend per calendar month at the price table's prices. Empty: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "budget limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class TeamLimits(models.Model):
    """The whole team's budget: one row (pk 1), made by a migration, so a submit can lock
    it (see governance/budgets.py) without racing to create it."""

    monthly_spend = models.DecimalField(
        "team spend per month (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Everyone's spend per calendar month together. Empty: no limit.",
    )

    class Meta:
        verbose_name = verbose_name_plural = "team budget"

    def __str__(self) -> str:
        return "Team budget"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1  # the one row, whoever makes it
        super().save(*args, **kwargs)


class AuditEvent(models.Model):
    """One change that matters to money or access: who, when, what, to what. Written by
    audit.record only, read-only in admin, and never holding a secret (a key's mask at
    most)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # Who, in words: a member's username, or the shell command and the OS user.
    actor = models.CharField(max_length=200)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor}: {self.action} {self.target}"
