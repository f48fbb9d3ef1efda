"""The prompt form: the capability matrix, camera rules, remix values and price estimates."""

import json
from decimal import Decimal

import pytest

from generations.kling import capabilities as caps
from generations.models import Generation, Price
from generations.studio.forms import GenerationForm, format_estimate, price_table

pytestmark = pytest.mark.django_db

BASE = {
    "prompt": "A red fox runs through fresh snow",
    "model_name": "kling-v1",
    "mode": "std",
    "duration": "5",
    "aspect_ratio": "16:9",
    "cfg_scale": "0.5",
    "camera": "auto",
    "visibility": "team",
}


def form(**changes) -> GenerationForm:
    f = GenerationForm({**BASE, **changes})
    f.is_valid()
    return f


@pytest.mark.parametrize(("name", "model"), list(caps.MODELS.items()))
def test_it_accepts_every_offered_combination(name, model):
    for mode in model.modes or ("",):
        for duration in model.durations:
            f = form(model_name=name, mode=mode, duration=duration)
            assert f.is_valid(), f.errors
            params = f.generation_params()
            assert params["mode"] == mode
            assert (params["cfg_scale"] is not None) == model.cfg_scale


def test_it_drops_mode_and_cfg_for_the_master_models():
    params = form(model_name="kling-v2-master", mode="pro", cfg_scale="0.9").generation_params()
    assert params["mode"] == "" and params["cfg_scale"] is None


def test_it_keeps_mode_but_drops_cfg_for_turbo():
    params = form(model_name="kling-v2-5-turbo", mode="pro", cfg_scale="0.9").generation_params()
    assert params["mode"] == "pro" and params["cfg_scale"] is None


def test_a_model_with_modes_needs_one():
    f = form(model_name="kling-v1-6", mode="")
    assert f.errors["mode"] == ["Kling 1.6 needs a mode: Standard or Professional."]


@pytest.mark.parametrize(
    "changes",
    [
        {"model_name": "kling-v1-6"},
        {"mode": "pro"},
        {"duration": "10"},
        {"model_name": "kling-v2-master", "mode": ""},
    ],
)
def test_camera_control_only_with_kling_v1_std_5s(changes):
    f = form(camera="down_back", **changes)
    assert "Camera control needs Kling 1.0" in f.errors["camera"][0]


@pytest.mark.parametrize("preset", list(caps.CAMERA_PRESETS))
def test_presets_take_no_config(preset):
    assert form(camera=preset).generation_params()["camera_control"] == {"type": preset}


def test_simple_move_sets_one_axis():
    control = form(camera="simple", camera_axis="zoom", camera_value="7.5").generation_params()[
        "camera_control"
    ]
    assert control["type"] == "simple"
    assert control["config"] == {**dict.fromkeys(caps.CAMERA_AXES, 0), "zoom": 7.5}


@pytest.mark.parametrize("value", ["", "0", "11", "-10.5"])
def test_simple_move_needs_a_non_zero_amount_in_range(value):
    f = form(camera="simple", camera_axis="pan", camera_value=value)
    assert not f.is_valid()
    assert "camera_value" in f.errors


def test_axis_and_amount_are_ignored_without_simple_move():
    assert (
        form(camera="auto", camera_axis="pan", camera_value="5").generation_params()[
            "camera_control"
        ]
        is None
    )


@pytest.mark.parametrize(
    "params",
    [
        {
            "camera_control": {
                "type": "simple",
                "config": {**dict.fromkeys(caps.CAMERA_AXES, 0), "tilt": -3.0},
            }
        },
        {"camera_control": {"type": "forward_up"}},
        {"model_name": "kling-v2-master", "mode": "", "cfg_scale": None, "duration": "10"},
        {
            "model_name": "kling-v1-6",
            "mode": "pro",
            "aspect_ratio": "9:16",
            "cfg_scale": 0.8,
            "negative_prompt": "blur",
            "visibility": "private",
        },
    ],
)
def test_a_remix_round_trips_every_parameter(alice, params):
    gen = Generation.objects.create(
        owner=alice,
        **{
            "prompt": "a cat",
            "negative_prompt": "",
            "model_name": "kling-v1",
            "mode": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
            "cfg_scale": 0.5,
            "camera_control": None,
            "visibility": "team",
            **params,
        },
    )
    f = GenerationForm(GenerationForm.initial_from(gen))
    assert f.is_valid(), f.errors
    out = f.generation_params()
    for field in (
        "prompt",
        "negative_prompt",
        "model_name",
        "mode",
        "duration",
        "aspect_ratio",
        "cfg_scale",
        "camera_control",
        "visibility",
    ):
        assert out[field] == getattr(gen, field), field


def test_prices_come_from_the_table():
    prices = price_table()
    assert prices[caps.price_key("kling-v1", "std", "5")].label == "$0.13 · 1 unit"
    assert prices[caps.price_key("kling-v1", "pro", "10")].label == "$0.92 · 7 units"
    # Models without a std/pro split are priced whatever mode the form last held.
    assert caps.price_key("kling-v2-master", "pro", "5") == "kling-v2-master||5"
    assert prices["kling-v2-master||5"].label == "$1.32 · 10 units"
    # Seeded without a published price: shown, and marked for an admin to confirm.
    assert not prices[caps.price_key("kling-v2-5-turbo", "std", "5")].confirmed


def test_an_edited_price_is_used_at_once():
    Price.objects.filter(model_name="kling-v1", mode="std", duration="5").update(
        usd=Decimal("0.125"), units=None
    )
    f = GenerationForm(initial={"model_name": "kling-v1"})
    assert f.estimate(price_table()).label == "$0.125"


def test_estimate_follows_submitted_data():
    prices = price_table()
    assert form(model_name="kling-v1-6", mode="pro", duration="10").estimate(prices).usd == Decimal(
        "0.92"
    )
    Price.objects.filter(model_name="kling-v3").delete()
    assert form(model_name="kling-v3", mode="std").estimate(price_table()) is None


def test_format_estimate():
    assert format_estimate(Decimal("2.000"), Decimal("20.00")) == "$2.00 · 20 units"
    assert format_estimate(Decimal("0.330"), Decimal("2.50")) == "$0.33 · 2.5 units"


def test_the_matrix_is_plain_data_for_the_browser():
    data = json.loads(json.dumps(caps.matrix()))
    assert data["models"]["kling-v2-master"] == {
        "label": "Kling 2.0 Master",
        "modes": [],
        "durations": ["5", "10"],
        "cfg_scale": False,
    }
    assert data["camera"] == {"model_name": "kling-v1", "mode": "std", "duration": "5"}


def test_errors_are_tied_to_their_fields_for_screen_readers():
    f = form(prompt="", camera="simple", camera_value="0")
    assert 'aria-describedby="prompt-count prompt-error"' in str(f["prompt"])
    assert 'aria-describedby="camera_value-error"' in str(f["camera_value"])
    assert "aria-describedby" not in str(f["model_name"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"camera": "simple", "camera_axis": "zoom", "camera_value": "-3"},
        {"camera": "down_back"},
    ],
)
def test_the_create_body_holds_only_documented_fields(changes, alice):
    """Issue 19: the body our client sends names `model_name` (never the legacy `model`), a
    simple camera's six axes, and nothing the contract doesn't document: the simulator now
    refuses anything else, as the real service may."""
    from generations.simulator.server import CAMERA_FIELDS, TEXT2VIDEO_FIELDS

    f = form(**changes)
    gen = Generation.objects.create(owner=alice, **f.generation_params())
    body = gen.api_params()
    assert set(body) <= set(TEXT2VIDEO_FIELDS) and "model" not in body
    assert body["model_name"] == "kling-v1"
    if (camera := body.get("camera_control")) and camera["type"] == "simple":
        assert set(camera["config"]) == set(CAMERA_FIELDS)
