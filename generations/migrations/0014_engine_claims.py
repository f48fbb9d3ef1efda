"""The engine (generations/lifecycle/engine.py): claims name their holder, whose heartbeat
keeps them alive; the one-minute pump schedule of 0005 goes, since every worker process of
the cluster runs the engine; CometAPI's statuses get their choices."""

from django.db import migrations, models

PUMP_SCHEDULE = "kling-pump"


def drop_pump_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PUMP_SCHEDULE).delete()


def restore_pump_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=PUMP_SCHEDULE).exists():
        Schedule.objects.create(
            name=PUMP_SCHEDULE,
            func="generations.tasks.pump",
            schedule_type="I",
            minutes=1,
            repeats=-1,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0013_key_pool_audit"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="claimed_by",
            field=models.CharField(blank=True, max_length=80),
        ),
        migrations.AlterField(
            model_name="generation",
            name="remote_status",
            field=models.CharField(
                blank=True,
                choices=[
                    ("submitted", "Submitted"),
                    ("processing", "Processing"),
                    ("succeed", "Succeeded"),
                    ("failed", "Failed"),
                ],
                max_length=12,
            ),
        ),
        migrations.RunPython(drop_pump_schedule, restore_pump_schedule),
    ]
