"""`manage.py seed_demo` fills the database with realistic, valid generations."""

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from generations.kling import capabilities as caps
from generations.models import TERMINAL, Favourite, Generation, Status

pytestmark = pytest.mark.django_db


def test_it_seeds_varied_valid_generations_with_real_clips():
    call_command("seed_demo", generations=120, seed=1, stdout=None)
    gens = list(Generation.objects.select_related("owner"))
    assert len(gens) == 120
    assert {g.status for g in gens} == {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}
    assert all(g.status in TERMINAL for g in gens)  # nothing for a worker to submit and pay
    assert len({g.owner.username for g in gens}) > 3
    assert len({g.model_name for g in gens}) > 3 and len({g.prompt for g in gens}) > 40
    assert {g.visibility for g in gens} == {"team", "private"}
    for g in gens:
        model = caps.MODELS[g.model_name]
        assert g.duration in model.durations and (g.mode in model.modes or not model.modes)
        if g.camera_control:
            assert caps.camera_control_allowed(g.model_name, g.mode, g.duration)
    finished = [g for g in gens if g.status == Status.SUCCEEDED]
    for g in finished:
        assert g.finished_at > g.submitted_at > g.created_at and g.task_id
    video = finished[0].video.name
    with default_storage.open(video, "rb") as f:
        assert f.read(12)[4:8] == b"ftyp"  # a real mp4
    with default_storage.open(finished[0].poster.name, "rb") as f:
        assert f.read(2) == b"\xff\xd8"  # a real JPEG
    assert Favourite.objects.exists()


def test_user_option_gives_every_generation_to_that_member(django_user_model):
    call_command("seed_demo", generations=15, user="dana", seed=2)
    dana = django_user_model.objects.get(username="dana")
    assert not dana.has_usable_password()
    assert Generation.objects.filter(owner=dana).count() == 15
    call_command("seed_demo", generations=5, user="dana", seed=3)  # again: clips reused
    assert Generation.objects.count() == 20


def test_it_refuses_a_negative_count():
    with pytest.raises(CommandError):
        call_command("seed_demo", generations=-1)
