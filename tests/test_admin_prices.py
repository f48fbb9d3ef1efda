"""Admin → Prices: readable names, not model ids, in a list narrow enough for a laptop, whose
prices are still edited in place (issue 19)."""

import re
from decimal import Decimal

from generations.models import Price

URL = "/admin/generations/price/"


def test_it_names_models_modes_and_lengths(admin_client):
    Price.objects.update_or_create(
        model_name="kling-v2-5-turbo", mode="std", duration="10", defaults={"usd": "0.5"}
    )
    body = admin_client.get(URL).content.decode()
    assert "Kling 2.5 Turbo · Standard" in body
    assert "Kling 2.0 Master" in body  # a model without modes: its name alone
    assert ">10 s<" in body
    # No cell, link or filter choice shows a raw model id.
    assert not re.search(r">\s*kling-v[0-9a-z-]*\s*<", body)
    assert 'href="?model_name=kling-v2-5-turbo"' in body  # the filter keeps the id in its URL
    assert ">Kling 2.5 Turbo</a>" in body


def test_it_has_five_columns_and_narrow_number_boxes(admin_client):
    body = admin_client.get(URL).content.decode()
    head = re.search(r"<thead>(.*?)</thead>", body, re.S)[1]
    # The action tick box, then model and mode, length, price, units, confirmed.
    assert head.count("<th") == 6
    assert re.search(r'<input type="number" name="form-0-usd"[^>]*class="vIntegerField"', body)
    # Admin's list has no labels: each box names its row, for screen readers (axe: "label").
    assert 'aria-label="Price (USD) of Kling 1.0 · Professional, 10 s"' in body
    assert 'aria-label="Confirmed of Kling 1.0 · Professional, 10 s"' in body


def test_prices_are_still_edited_in_the_list(admin_client):
    price = Price.objects.order_by("model_name", "mode", "duration").first()
    rows = Price.objects.count()
    data = {
        "form-TOTAL_FORMS": str(rows),
        "form-INITIAL_FORMS": str(rows),
        "_save": "Save",
    }
    for i, p in enumerate(Price.objects.order_by("model_name", "mode", "duration")):
        data |= {
            f"form-{i}-id": str(p.pk),
            f"form-{i}-usd": str(p.usd),
            f"form-{i}-units": "" if p.units is None else str(p.units),
        }
        if p.confirmed:
            data[f"form-{i}-confirmed"] = "on"
    data["form-0-usd"] = "0.777"
    response = admin_client.post(URL, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    price.refresh_from_db()
    assert price.usd == Decimal("0.777")


def test_the_filters_filter(admin_client):
    body = admin_client.get(URL, {"model_name": "kling-v3", "mode": "pro"}).content.decode()
    assert "Kling 3.0 · Professional" in body
    assert "Kling 1.0" not in body.split('id="changelist-filter"')[0]
    assert admin_client.get(URL, {"duration": "nonsense"}).status_code == 200
