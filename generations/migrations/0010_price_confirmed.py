"""Prices for every model the capability table offers. CometAPI publishes none yet for
kling-v2-5-turbo std, kling-v2-6 and kling-v3: these rows are estimates from Kling's unit
table and the neighbouring turbo prices, marked unconfirmed for an admin to check."""

from decimal import Decimal

from django.db import migrations, models

# (model, mode, duration): (usd, units)
TO_CONFIRM = {
    ("kling-v2-5-turbo", "std", "5"): ("0.20", "1.5"),
    ("kling-v2-5-turbo", "std", "10"): ("0.40", "3"),
    ("kling-v2-6", "std", "5"): ("0.20", None),
    ("kling-v2-6", "std", "10"): ("0.40", None),
    ("kling-v2-6", "pro", "5"): ("0.33", None),
    ("kling-v2-6", "pro", "10"): ("0.66", None),
    ("kling-v3", "std", "5"): ("0.20", None),
    ("kling-v3", "std", "10"): ("0.40", None),
    ("kling-v3", "pro", "5"): ("0.33", None),
    ("kling-v3", "pro", "10"): ("0.66", None),
}


def seed(apps, schema_editor):
    Price = apps.get_model("generations", "Price")
    for (model_name, mode, duration), (usd, units) in TO_CONFIRM.items():
        Price.objects.get_or_create(
            model_name=model_name,
            mode=mode,
            duration=duration,
            defaults={
                "usd": Decimal(usd),
                "units": Decimal(units) if units else None,
                "confirmed": False,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("generations", "0009_download_slots")]
    operations = [
        migrations.AddField(
            model_name="price",
            name="confirmed",
            field=models.BooleanField(
                default=True, help_text="Untick while the price is a guess an admin must confirm."
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
