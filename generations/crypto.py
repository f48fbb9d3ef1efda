"""Encryption at rest for API keys: Fernet (AES-128-CBC + HMAC) from `cryptography`.

FIELD_ENCRYPTION_KEY holds one or more comma-separated Fernet keys; the first encrypts and
all decrypt, so a key can be rotated by putting the new one first and re-saving the rows.
Unlike some packaged fields, a value that fails to decrypt raises instead of being handed
back as if it were the plaintext (that would send ciphertext to CometAPI as a bearer key).
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys.split(",") if k.strip()])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be Fernet keys (urlsafe base64 of 32 bytes); make one "
            "with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY)


class DecryptionError(Exception):
    """The stored value was encrypted with a key that is no longer configured."""


class EncryptedTextField(models.TextField):
    """A text column that holds a Fernet token; Python code sees the plaintext."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return fernet().encrypt(value.encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken:
            raise DecryptionError(
                "an encrypted value cannot be read with FIELD_ENCRYPTION_KEY"
            ) from None

    def value_to_string(self, obj) -> str:
        # dumpdata: the stored token, never the plaintext, so a fixture or backup holds no
        # secret; to_python below turns it back on loaddata (with the same keys).
        value = self.value_from_object(obj)
        if value in (None, ""):
            return value
        return fernet().encrypt(value.encode()).decode()

    def to_python(self, value):
        value = super().to_python(value)
        if isinstance(value, str) and value.startswith("gAAAA"):
            try:
                return fernet().decrypt(value.encode()).decode()
            except InvalidToken:
                pass  # not one of ours: a value like any other
        return value
