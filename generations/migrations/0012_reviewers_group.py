from django.db import migrations

REVIEWERS = "Reviewers"  # generations.review.notes.REVIEWERS_GROUP; admins add members in admin


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=REVIEWERS)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("generations", "0011_team_review"),
    ]

    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
