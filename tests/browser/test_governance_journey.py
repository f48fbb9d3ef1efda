"""An admin adds a key (and sees only its mask), gives a member a daily limit of 2; the
member submits 3 prompts: two go to CometAPI, the third is refused with the limit's message
and never reaches it; the usage page and its CSV show the two jobs."""

import csv
import io

import pytest
from playwright.sync_api import Page, expect

from generations.models import ApiKey, Generation
from generations.simulator.server import Simulator
from tests.stack import running_cluster, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SECRET = "sk-journey-secret-0000abcd1234"


def log_in(page: Page, base: str, username: str, password: str, *, admin: bool = False) -> None:
    page.goto(f"{base}/admin/" if admin else f"{base}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_limits_stop_the_third_job_and_usage_shows_two(
    page: Page, new_page, live_server, alice, django_user_model
):
    django_user_model.objects.create_superuser("root", password="root-pass")
    base = live_server.url
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    with Simulator(speed=20.0, seed=5) as sim, running_cluster(cometapi_base_url=sim.base_url):
        # The admin adds a key and sees only its mask.
        log_in(page, base, "root", "root-pass", admin=True)
        page.goto(f"{base}/admin/generations/apikey/add/")
        page.get_by_label("Name").fill("team")
        page.get_by_label("Secret").fill(SECRET)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_text("…1234")).to_be_visible()
        assert SECRET not in page.content()
        assert ApiKey.objects.get(name="team").secret == SECRET

        # ... and gives alice a daily limit of 2 on her user page.
        page.goto(f"{base}/admin/auth/user/{alice.pk}/change/")
        page.locator("#id_limits-0-jobs_per_day").fill("2")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

        # The member, in a browser of her own, submits three prompts.
        member = new_page()
        member.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        log_in(member, base, "alice", "alice-pass")
        expect(member.get_by_role("heading", name="New video")).to_be_visible()
        expect(member.locator("#budget-standing")).to_have_text("0 of 2 jobs today · $0 this month")
        prompt = member.get_by_label("Prompt", exact=True)
        for n, text in enumerate(["A red fox at dawn", "A lighthouse in a storm"], start=1):
            prompt.fill(text)
            member.get_by_role("button", name="Generate").click()
            expect(member.locator("article.gen")).to_have_count(n)
            expect(member.locator("#budget-standing")).to_contain_text(f"{n} of 2 jobs today")
        expect(member.locator("#estimate-fit")).to_have_text("Won't fit: no jobs left today.")
        prompt.fill("A third clip, one too many")
        member.get_by_role("button", name="Generate").click()
        refusal = member.get_by_role("alert").filter(has_text="Daily job limit")
        expect(refusal).to_contain_text("you have used 2 of your 2 jobs today")
        expect(refusal).to_contain_text("It resets at midnight")
        expect(member.locator("article.gen")).to_have_count(2)

        # Two creates reach CometAPI, and the third never does.
        wait_for(lambda: sim.create_count() == 2, timeout=60, message="two creates upstream")
        prompts = sorted(t["_sim"]["request"]["prompt"] for t in sim.tasks())
        member.context.close()  # its cards stop polling
        assert prompts == ["A lighthouse in a storm", "A red fox at dawn"]
        assert Generation.objects.count() == 2

        # The usage page and its CSV show the two jobs.
        page.goto(f"{base}/usage/")
        expect(page.locator("#usage-total")).to_contain_text("on 2 jobs")
        expect(page.locator("#usage-by-member")).to_contain_text("alice")
        expect(page.locator("svg.chart rect.chart-bar")).not_to_have_count(0)
        csv_url = page.get_by_role("link", name="Download CSV").get_attribute("href")
        response = page.request.get(f"{base}{csv_url}")
        assert response.status == 200
        rows = list(csv.DictReader(io.StringIO(response.text())))
        assert sum(int(r["jobs"]) for r in rows) == 2
        assert {r["member"] for r in rows} == {"alice"}
        assert sim.create_count() == 2
        assert SECRET not in page.content()
    assert not [e for e in errors if "Content Security Policy" in e], errors
