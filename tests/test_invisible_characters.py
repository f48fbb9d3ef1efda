"""Issue 8, finding 8: prompts with invisible control characters are refused with a message
that names the character and where it is; ordinary line breaks are fine."""

import pytest
from django.urls import reverse

from generations.models import Generation
from generations.studio.forms import GenerationForm
from generations.validators import VisibleTextValidator, invisible_characters

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

REFUSED = {
    "escape": "\x1b[31m",
    "null": "\x00",
    "bell": "\x07",
    "delete": "\x7f",
    "c1 control": "\x9b",
    "lone carriage return": "\r",
    "left-to-right embedding": "\u202a",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "pop directional isolate": "\u2069",
    "zero-width space": "\u200b",
    "left-to-right mark": "\u200e",
    "right-to-left mark": "\u200f",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "tag character": "\U000e0041",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "lone joiner": "\u200d ",
}


def errors(**changes) -> dict:
    f = GenerationForm({**BASE, **changes})
    f.is_valid()
    return f.errors


@pytest.mark.parametrize("bad", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_it_refuses_invisible_characters(field, bad):
    found = errors(**{field: f"A fox{bad}in snow"})
    assert field in found, found
    assert "invisible control character" in found[field][0]


def test_the_message_names_the_character_and_its_position():
    found = errors(prompt="A fox in \u202esnow", negative_prompt="blur\x1b")
    assert found["prompt"] == [
        "The prompt contains an invisible control character "
        "(U+202E RIGHT-TO-LEFT OVERRIDE) at character 10. Delete it and try again."
    ]
    assert found["negative_prompt"] == [
        "The negative prompt contains an invisible control character (U+001B) "
        "at character 5. Delete it and try again."
    ]


def test_the_message_counts_the_others():
    found = errors(prompt="a\u200bb\u200bc\u200bd")
    assert "(U+200B ZERO WIDTH SPACE) at character 2 and 2 more like it." in found["prompt"][0]


@pytest.mark.parametrize(
    "fine",
    [
        "A fox\r\nin snow\nat dawn",
        "Columns:\tone\ttwo",
        "雪の中の狐, 雪地里的狐狸",
        "روباه در برف\u200cها",  # Persian needs the zero-width non-joiner inside words
        "A family 👨\u200d👩\u200d👧 on a beach ❤\ufe0f",  # emoji sequences need the joiner
        "Café — “quoted” … ñ",
    ],
)
def test_it_accepts_ordinary_text(fine):
    assert not errors(prompt=fine, negative_prompt=fine)
    assert list(invisible_characters(fine)) == []


def test_the_validator_is_reusable_for_other_text():
    validator = VisibleTextValidator("The comment")
    validator("fine\r\ntext")
    with pytest.raises(Exception, match=r"The comment contains .* \(U\+2066 LEFT-TO-RIGHT"):
        validator("\u2066hidden")


@pytest.mark.django_db
def test_the_studio_refuses_it_and_saves_nothing(client, alice):
    client.force_login(alice)
    response = client.post(reverse("studio"), {**BASE, "prompt": "A fox \u202ein snow"})
    assert response.status_code == 422
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in response.content.decode()
    assert not Generation.objects.exists()
