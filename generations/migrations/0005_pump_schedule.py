"""The pump's one-minute schedule (the sweeper of last resort), made once here rather than
by every worker at start-up, where workers spawning together could each insert one."""

from django.db import migrations

NAME = "kling-pump"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=NAME).exists():
        Schedule.objects.create(
            name=NAME, func="generations.tasks.pump", schedule_type="I", minutes=1, repeats=-1
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0004_gallery_indexes"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create, remove)]
