"""Explicit job states (issue 18): two states that were implicit become values of `status`.

- "storing": was "processing" with Kling's `succeed` seen (the clip being copied);
- "retrying": was "queued" with `create_sent` (a create whose answer was lost, waiting to
  look its task up on the same key).

Rows in flight when this deploys move with it; going back moves them back. Stop the cluster
before migrating (the release step does), so no engine writes the old shape meanwhile.
"""

from django.conf import settings
from django.db import migrations, models


def name_the_states(apps, schema_editor):
    Generation = apps.get_model("generations", "Generation")
    Generation.objects.filter(status="processing", remote_status="succeed").update(status="storing")
    Generation.objects.filter(status="queued", create_sent=True).update(status="retrying")


def unname_the_states(apps, schema_editor):
    Generation = apps.get_model("generations", "Generation")
    Generation.objects.filter(status="storing").update(status="processing")
    Generation.objects.filter(status="retrying").update(status="queued")


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0014_engine_claims"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(name_the_states, unname_the_states, elidable=False),
        migrations.RemoveIndex(
            model_name="generation",
            name="gen_due_work",
        ),
        migrations.AlterField(
            model_name="generation",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Waiting in our queue"),
                    ("retrying", "Sending again"),
                    ("submitting", "Submitting"),
                    ("submitted", "Submitted"),
                    ("processing", "Generating"),
                    ("storing", "Saving the clip"),
                    ("succeeded", "Finished"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="queued",
                max_length=12,
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(
                    (
                        "status__in",
                        ["queued", "retrying", "submitting", "submitted", "processing", "storing"],
                    )
                ),
                fields=["next_attempt_at"],
                name="gen_due_work",
            ),
        ),
    ]
