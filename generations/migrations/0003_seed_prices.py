"""Seed the price table from the contract doc (CometAPI per-task prices, Dec 2025, approximate;
Kling's unit table). Admins edit these rows; the code never hard-codes a price."""

from decimal import Decimal

from django.db import migrations

# (model, mode, duration): (usd, units)
PRICES = {
    ("kling-v1", "std", "5"): ("0.13", "1"),
    ("kling-v1", "std", "10"): ("0.26", "2"),
    ("kling-v1", "pro", "5"): ("0.46", "3.5"),
    ("kling-v1", "pro", "10"): ("0.92", "7"),
    ("kling-v1-6", "std", "5"): ("0.26", "2"),
    ("kling-v1-6", "std", "10"): ("0.53", "4"),
    ("kling-v1-6", "pro", "5"): ("0.46", "3.5"),
    ("kling-v1-6", "pro", "10"): ("0.92", "7"),
    ("kling-v2-master", "", "5"): ("1.32", "10"),
    ("kling-v2-master", "", "10"): ("2.64", "20"),
    ("kling-v2-1-master", "", "5"): ("1.32", "10"),
    ("kling-v2-1-master", "", "10"): ("2.64", "20"),
    ("kling-v2-5-turbo", "pro", "5"): ("0.33", "2.5"),
    ("kling-v2-5-turbo", "pro", "10"): ("0.66", "5"),
}


def seed(apps, schema_editor):
    Price = apps.get_model("generations", "Price")
    for (model_name, mode, duration), (usd, units) in PRICES.items():
        Price.objects.get_or_create(
            model_name=model_name, mode=mode, duration=duration,
            defaults={"usd": Decimal(usd), "units": Decimal(units)},
        )


class Migration(migrations.Migration):
    dependencies = [("generations", "0002_favourites_prices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
