"""The admin in a real browser (Debian's Chromium via Playwright, the app under uvicorn): a wrong
password, sign in, add a recruiter (password shown once), the recruiter signs in with it, log out.
Screenshots go to test-artifacts/screenshots/auth-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web_support import (
    chromium,
    give_consent,
    make_settings,
    new_page,
    playwright_or_skip,
    screenshot,
    seed_interview,
    sign_in,
    staff_server,
)

from interviewer import accounts
from interviewer.store.db import session_scope

playwright_or_skip()

PASSWORD = "admin password for the browser test"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    tmp = tmp_path_factory.mktemp("auth-browser")
    settings = make_settings(tmp)
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        accounts.create_user(
            s, email="admin@example.org", role="admin", name="Ada Admin", password=PASSWORD
        )
    with staff_server(settings) as server:
        yield server.url, seeded


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_admin_adds_a_recruiter(site, browser) -> None:
    base, _seeded = site
    page = new_page(browser, width=1100, height=800)
    context = page.context

    # an anonymous visit to a staff page lands on the sign-in form, then returns there
    page.goto(f"{base}/users")
    page.wait_for_url("**/login?next=%2Fusers")
    sign_in(page, "admin@example.org", "not the password")
    error = page.locator("#login-error")
    error.wait_for()
    assert "Wrong email or password" in error.inner_text()
    assert page.input_value("#email") == "admin@example.org"
    assert page.input_value("#password") == ""
    screenshot(page, "auth-wrong-password")

    sign_in(page, "admin@example.org", PASSWORD)
    page.wait_for_url("**/users")
    assert "Ada Admin" in page.inner_text(".staff-me")
    nav = page.inner_text(".staff-nav")
    assert "Openings" in nav and "Banks" in nav and "Users" in nav

    page.fill("#new-email", "rita@example.org")
    page.fill("#new-name", "Rita Recruiter")
    page.select_option("#new-role", "recruiter")
    page.click("form[aria-labelledby=add-heading] button[type=submit]")
    secret = page.locator("[data-password]")
    secret.wait_for()
    password = secret.inner_text().strip()
    assert len(password) >= 20
    row = page.locator('[data-user-row="rita@example.org"]')
    assert "recruiter" in row.inner_text() and "active" in row.inner_text()
    screenshot(page, "auth-recruiter-added")

    page.click("#logout")
    page.wait_for_url("**/login?signed_out=1")
    assert "You are signed out" in page.inner_text("main")
    screenshot(page, "auth-signed-out")
    page.goto(f"{base}/users")  # the session is gone
    page.wait_for_url("**/login?next=%2Fusers")

    # the new recruiter signs in with the password shown once; no Users link for them
    page.goto(f"{base}/login")
    sign_in(page, "rita@example.org", password)
    page.wait_for_url("**/openings**")
    assert "Users" not in page.inner_text(".staff-nav")
    page.goto(f"{base}/users")
    assert "You cannot open this page" in page.inner_text("main")
    screenshot(page, "auth-recruiter-forbidden")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["interviewer_session"]["httpOnly"]
    assert cookies["interviewer_session"]["sameSite"] == "Lax"


def test_an_applicant_page_recovers_when_the_csrf_cookie_changes(site, browser) -> None:
    """Someone signs in in another tab of the same browser while an interview page is open: the
    cookie's CSRF secret changes, the page's next upload is refused, and renewCsrf() (what the
    interview page calls on that refusal) fetches the new token so the chunk goes through."""
    base, seeded = site
    applicant = new_page(browser)
    context = applicant.context
    applicant.goto(f"{base}/i/{seeded.token}")
    give_consent(applicant)

    staff = context.new_page()
    staff.goto(f"{base}/login")
    sign_in(staff, "admin@example.org", PASSWORD)
    staff.wait_for_url("**/staff")

    statuses = applicant.evaluate(
        """async () => {
          const m = await import("/static/common.js");
          const url = location.pathname.replace(/\\/check$/, "/media/camera") + "?chunk=0";
          const send = () => fetch(url, {
            method: "POST",
            body: new Blob(["x"], { type: "video/webm" }),
            headers: m.csrfHeaders({ "Content-Type": "video/webm" }),
          });
          const first = await send();
          const renewed = await m.renewCsrf(first);
          const second = await send();
          return [first.status, renewed, second.status];
        }"""
    )
    assert statuses == [403, True, 201], statuses
