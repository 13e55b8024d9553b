"""The Content-Security-Policy in Chromium: every page with a script, staff and applicant, loads
without one violation (Chromium reports each in the console), and the error focus that used to
be an inline script still happens (issue 18, finding 6)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from openings_support import PASSWORD, seed_opening, staff
from web_support import (
    chromium,
    make_settings,
    new_page,
    playwright_or_skip,
    sign_in,
    staff_server,
)

from interviewer.store.db import session_scope
from interviewer.store.models import Opening

playwright_or_skip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    tmp = tmp_path_factory.mktemp("csp-browser")
    banks = tmp / "banks"
    banks.mkdir()
    shutil.copy("question_banks/law.yaml", banks / "law.yaml")
    settings = make_settings(tmp, banks_dir=banks)
    seed = seed_opening(settings, [("Ann", [0.9, 0.8]), ("Dan", None)])
    with session_scope(seed.engine) as s:
        staff(s, "admin", email="admin@example.org", opening=s.get(Opening, seed.opening_id))
    with staff_server(settings) as server:
        yield server.url, seed


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("--use-fake-ui-for-media-stream") as b:  # the device check may ask
        yield b


def _focused(page: Any) -> str:
    """The focused element's id once the page's scripts ran (evaluate, not wait_for_function:
    Playwright polls a string predicate with eval, which the policy rightly refuses)."""
    page.wait_for_load_state("load")
    return page.evaluate("document.activeElement ? document.activeElement.id : ''")


def test_no_page_breaks_the_content_security_policy(site, browser) -> None:
    base, seed = site
    page = new_page(browser, bypass_csp=False)
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: (
            violations.append(f"{page.url}: {msg.text}")
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text
            else None
        ),
    )

    # the sign-in error is focused (static/focus-error.js, no inline script)
    page.goto(f"{base}/login")
    sign_in(page, "admin@example.org", "wrong password")
    page.locator("#login-error").wait_for()
    assert _focused(page) == "login-error"
    sign_in(page, "admin@example.org", PASSWORD)
    page.wait_for_url("**/staff")

    opening = f"{base}/openings/{seed.opening_id}"
    staff_pages = [
        "/users",
        "/openings",
        f"/openings/{seed.opening_id}",
        f"/openings/{seed.opening_id}/charts",
        f"/openings/{seed.opening_id}/invites",
        f"/openings/{seed.opening_id}/settings",
        f"/openings/{seed.opening_id}/applicants/{seed.ids['Ann']}",
        "/banks",
        "/banks/law",
        "/banks/law/edit",
    ]
    for path in staff_pages:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
    page.goto(opening)

    # the applicant: consent sent incomplete (its error focused), then the device check
    applicant = new_page(browser, bypass_csp=False)
    applicant.on(
        "console",
        lambda msg: (
            violations.append(f"{applicant.url}: {msg.text}")
            if "Content Security Policy" in msg.text
            else None
        ),
    )
    token = seed.tokens["Dan"]
    applicant.goto(f"{base}/i/{token}")
    # past the browser's own check of the required boxes, to the server's answer
    applicant.evaluate("document.querySelectorAll('[required]').forEach(e => e.remove())")
    applicant.locator("form button[type=submit]").first.click()
    applicant.locator("#consent-error").wait_for()
    assert _focused(applicant) == "consent-error"
    for box in applicant.locator("input[type=checkbox]").all():
        box.check()  # the page came back from the server: its boxes are there again
    applicant.locator("form button[type=submit]").first.click()
    applicant.wait_for_url("**/check")
    applicant.wait_for_load_state("networkidle")
    applicant.wait_for_timeout(1500)  # the device check's script runs its first steps

    assert violations == []
