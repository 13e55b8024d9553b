"""A recruiter's day in Debian's Chromium (Playwright): sign in, create an opening, upload a CSV
with one bad row, read the error, fix the file, copy a link, look at the ranked shortlist and
its charts, record a decision and find it in the history. Screenshots of every page go to
test-artifacts/screenshots/openings-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openings_support import PASSWORD, seed_opening, staff
from web_support import (
    chromium,
    make_settings,
    new_page,
    playwright_or_skip,
    screenshot,
    sign_in,
    staff_server,
)

from interviewer.store.db import session_scope
from interviewer.store.models import AuditLog, Interview, Opening

sync_api = playwright_or_skip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("openings-browser")
    settings = make_settings(tmp)
    seed = seed_opening(
        settings,
        [
            ("Ana Pereira", [0.92, 0.81]),
            ("Ben Okafor", [0.64, 0.71]),
            ("Chloé Martin", [0.64, 0.71]),
            ("Dev Sharma", [0.35, 0.52]),
            ("Eli Novak", [0.21, 0.12]),
            ("Fay Wong", []),
            ("Gus Berg", None),
        ],
        top_n=2,
        flags={"Eli Novak": ["high", "warning", "info"], "Dev Sharma": ["warning"]},
        demographics={
            "Ana Pereira": ("Female", "Hispanic or Latino"),
            "Ben Okafor": ("Male", "Black or African American"),
            "Chloé Martin": ("Female", "White"),
            "Dev Sharma": ("Male", "Asian"),
            "Eli Novak": ("Male", "White"),
        },
    )
    with session_scope(seed.engine) as s:
        staff(
            s,
            "recruiter",
            email="rita@example.org",
            name="Rita Recruiter",
            opening=s.get(Opening, seed.opening_id),
        )
    with staff_server(settings) as live:
        yield {"url": live.url, "seed": seed, "tmp": tmp}


def _shot(page: Any, name: str) -> None:
    screenshot(page, f"openings-{name}")


def test_recruiter_flow(server: dict[str, Any]) -> None:
    url, seed, tmp = server["url"], server["seed"], server["tmp"]
    with chromium() as browser:
        page = new_page(browser)
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        _flow(page, url, seed, tmp)


def _flow(page: Any, url: str, seed: Any, tmp: Path) -> None:
    expect = sync_api.expect
    # sign in: /openings sends an anonymous visitor to the login page and back
    page.goto(f"{url}/openings")
    page.wait_for_url("**/login?next=*")
    sign_in(page, "rita@example.org", PASSWORD)
    page.wait_for_url(f"{url}/openings")
    expect(page.locator("table[aria-label=Openings]")).to_contain_text("Dermatologist reviewer")
    _shot(page, "list")

    # create an opening: first with a mistake, then right
    page.click("#new-opening")
    page.wait_for_url("**/openings/new")
    page.fill("#title", "Radiology reviewer, EU")
    page.fill("#shortlist_top_n", "0")
    page.click("#create-opening")
    expect(page.locator("#form-errors")).to_be_visible()
    expect(page.locator("#bank_version_id-error")).to_contain_text("Choose a published bank")
    expect(page.locator("#shortlist_top_n-error")).to_contain_text("between 1")
    _shot(page, "new-errors")
    page.select_option("#bank_version_id", index=1)
    page.fill("#shortlist_top_n", "3")
    page.fill("#shortlist_threshold", "60")
    page.check("#require_fullscreen")
    page.click("#create-opening")
    page.wait_for_url("**/invites?created=1")
    expect(page.locator("h1")).to_have_text("Radiology reviewer, EU")

    # a CSV with one bad row: the row is named, nothing is imported
    bad = tmp / "applicants.csv"
    bad.write_text(
        "name,email,sex\nIris Falk,iris@example.org,Female\nJon Reyes,jon.example.org,\n"
        "Kim Lee,kim@example.org,\n",
        encoding="utf-8",
    )
    page.set_input_files("#csv-file", str(bad))
    page.click("#upload-csv")
    errors = page.locator("#csv-errors")
    expect(errors).to_be_visible()
    expect(errors.locator("tr[data-row='3']")).to_contain_text("jon.example.org")
    expect(errors).to_contain_text("nothing was imported")
    expect(page.locator("table.links")).to_have_count(0)
    _shot(page, "csv-error")

    # fixed: all three invited, each with a link to copy
    bad.write_text(bad.read_text().replace("jon.example.org", "jon@example.org"))
    page.set_input_files("#csv-file", str(bad))
    page.click("#upload-csv")
    expect(page.locator("#added")).to_contain_text("3 applicants invited")
    links = page.locator("input.link")
    expect(links).to_have_count(3)
    first = links.first.input_value()
    assert "/i/" in first
    page.locator("button.copy").first.click()
    expect(page.locator("#copy-status")).to_contain_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == first
    _shot(page, "invites")

    # the ranked shortlist of the opening with finished interviews
    page.goto(f"{url}/openings/{seed.opening_id}")
    ranked = page.locator("#ranked tbody tr")
    expect(ranked).to_have_count(5)
    expect(ranked.nth(1).locator(".rank")).to_have_text("=2")
    expect(ranked.nth(2).locator(".rank")).to_have_text("=2")
    expect(page.locator("#unranked tbody tr")).to_have_count(2)
    _shot(page, "shortlist")

    # filter (bookmarkable), then decide on the flagged applicant
    page.select_option("select[name=flagged]", "yes")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**flagged=yes**")
    expect(ranked).to_have_count(2)
    eli = page.locator("tr", has_text="Eli Novak")
    eli.locator("select[name=decision]").select_option("reject")
    eli.locator("input[name=note]").fill("answers read from notes")
    eli.locator("button", has_text="Save").click()
    expect(page.locator("#decision-saved")).to_be_visible()
    assert "flagged=yes" in page.url  # the filtered view is kept
    expect(page.locator("tr", has_text="Eli Novak")).to_contain_text("reject")
    expect(page.locator("tr", has_text="Eli Novak")).to_contain_text("answers read from notes")
    _shot(page, "decision")

    # compare two applicants (the REPORT helper's page), then come back
    page.goto(f"{url}/openings/{seed.opening_id}")
    page.check(f"#c-{seed.ids['Ana Pereira']}")
    page.check(f"#c-{seed.ids['Ben Okafor']}")
    page.click("#compare-button")
    page.wait_for_url("**/compare?i=*")
    assert page.url.endswith(f"?i={seed.ids['Ana Pereira']}&i={seed.ids['Ben Okafor']}")
    expect(page.locator("main")).to_contain_text("Ben Okafor")
    page.go_back()

    page.click("nav.tabs >> text=History")
    expect(page.locator("#history tbody tr").first).to_contain_text("answers read from notes")
    expect(page.locator("#history tbody tr").first).to_contain_text("Rita Recruiter")
    _shot(page, "history")

    page.click("nav.tabs >> text=Charts & fairness")
    expect(page.locator("svg[data-chart=dist-all]")).to_be_visible()
    expect(page.locator("svg[data-chart=impact-sex]")).to_be_visible()
    _shot(page, "charts")

    page.click("nav.tabs >> text=Settings & recruiters")
    expect(page.locator("li[data-recruiter='rita@example.org']")).to_be_visible()
    expect(page.locator("#shortlist_top_n")).to_have_value("2")
    _shot(page, "settings")

    # on a phone the wide tables scroll inside their own box, the page itself does not
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}/openings/{seed.opening_id}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    _shot(page, "shortlist-phone")

    with session_scope(seed.engine) as s:
        eli_id = next(i for n, i in seed.ids.items() if n == "Eli Novak")
        assert s.get(Interview, eli_id).decision == "reject"
        assert (
            s.query(AuditLog)
            .filter(AuditLog.action == "decision", AuditLog.target == f"interview:{eli_id}")
            .count()
            == 1
        )
