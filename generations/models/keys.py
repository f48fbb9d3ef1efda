"""CometAPI keys (secrets encrypted at rest) and the retired secrets of rotated keys."""

from django.db import models

from ..crypto import DecryptionError, EncryptedTextField


def mask_secret(secret: str) -> str:
    """Enough of a key for an admin to recognise it, never more than its last 4 characters
    (and nothing of a short one)."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


# Keys the engine may send new jobs with (lifecycle.keys.pick_key chooses among them).
USABLE = models.Q(is_active=True, is_healthy=True)


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> "ApiKeyQuerySet":
        return self.filter(USABLE)


class ApiKeyManager(models.Manager.from_queryset(ApiKeyQuerySet)):
    """Keys without their secret: choosing a key and counting its slots never decrypts, so a
    key that can't be decrypted can't stop the others. Reading `.secret` loads and decrypts
    it then (see lifecycle.key_secret)."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().defer("secret")


class ApiKey(models.Model):
    """A CometAPI key. The secret is encrypted at rest and never shown after it is saved."""

    name = models.CharField(max_length=100, unique=True)
    secret = EncryptedTextField(help_text="The CometAPI key (sk-…). Stored encrypted.")
    is_active = models.BooleanField(default=True, help_text="Admins switch a key off here.")
    concurrency_limit = models.PositiveIntegerField(
        default=5,
        help_text="Most tasks this key may have running upstream at once (its Kling package).",
    )
    # Set by the worker when CometAPI refuses the key itself (401, arrears, no access).
    is_healthy = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    unhealthy_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by each rotation; a generation records the version that created its task
    # (tasks belong to the secret that made them, see governance/keypool.py).
    secret_version = models.PositiveIntegerField(default=1, editable=False)
    # The background probe of an unhealthy key (keypool.probe_unhealthy_keys).
    last_probe_at = models.DateTimeField(null=True, blank=True)
    last_probe_result = models.CharField(max_length=300, blank=True)

    objects = ApiKeyManager()

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def hint(self) -> str:
        """Enough of the key for an admin to recognise it, never enough to use it."""
        try:
            secret = self.secret
        except DecryptionError:
            return "(cannot be decrypted)"
        return mask_secret(secret)


class RetiredSecret(models.Model):
    """A rotated-out secret of a key, kept only while tasks it created are unfinished: Kling
    tasks belong to the secret that created them, so only it can read them and fetch their
    clips. keypool.forget_retired_secrets deletes it once they have all ended."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="retired_secrets")
    version = models.PositiveIntegerField()
    secret = EncryptedTextField()
    retired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "version"], name="one_secret_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} v{self.version}"
