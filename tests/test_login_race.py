"""Sign-in under concurrency: bad sign-ins never make a good one fail, and the lockout cannot be
raced (the attempt is reserved in the database before the password is checked)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from web_support import make_settings, seed_interview, staff_server

from interviewer import accounts
from interviewer.store.db import session_scope
from interviewer.store.models import Role
from interviewer.web import login
from interviewer.web.throttle import LoginThrottle

PASSWORD = "correct horse battery staple"
EMAIL = "admin@example.org"


def _client_with_token(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=120)
    page = client.get("/login")
    token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return client, token


def test_bad_sign_ins_do_not_make_a_good_one_fail(tmp_path: Path) -> None:
    # A high limit: this is about the database lock, not the lockout.
    settings = make_settings(tmp_path, login_max_failures=1000)
    seeded = seed_interview(settings)
    with session_scope(seeded.engine) as s:
        accounts.create_user(s, email=EMAIL, role=Role.admin, password=PASSWORD, name="Ad")
    with staff_server(settings) as server:
        for round_ in range(3):
            codes = _sign_in_together(server.url, round_)
            assert codes[-1] == 303, (round_, codes)
            assert codes[:-1] == [401] * 20, (round_, codes)


def _sign_in_together(url: str, round_: int) -> list[int]:
    """20 wrong sign-ins with unknown emails and the right one, sent at the same moment."""
    emails = [f"nobody{round_}-{n}@example.org" for n in range(20)] + [EMAIL]
    clients = [_client_with_token(url) for _ in emails]
    start = threading.Barrier(len(emails))

    def post(i: int) -> int:
        client, token = clients[i]
        password = PASSWORD if emails[i] == EMAIL else "wrong password!"
        start.wait()
        form = {"email": emails[i], "password": password, "csrf_token": token}
        return client.post("/login", data=form).status_code

    try:
        with ThreadPoolExecutor(len(emails)) as pool:
            return list(pool.map(post, range(len(emails))))
    finally:
        for client, _ in clients:
            client.close()


def test_the_lockout_cannot_be_raced(db_engine, tmp_path: Path, monkeypatch) -> None:
    settings = make_settings(tmp_path, login_max_failures=5)
    with session_scope(db_engine) as s:
        accounts.create_user(s, email=EMAIL, role=Role.admin, password=PASSWORD, name="Ad")
    checked: list[int] = []
    verify = accounts.verify_password

    def counting(password_hash: str, password: str) -> bool:
        checked.append(1)
        return verify(password_hash, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    throttle = LoginThrottle(5, 15 * 60, engine=db_engine)
    start = threading.Barrier(10)

    def guess(_: int) -> object:
        start.wait()
        return login._sign_in(db_engine, settings, EMAIL, "wrong password!", "10.0.0.1", throttle)

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(guess, range(10)))
    assert len(checked) == 5  # argon2 ran for the five reserved attempts only
    paused = [o for o in outcomes if isinstance(o, str) and o.startswith("Too many")]
    wrong = [o for o in outcomes if isinstance(o, str) and o.startswith("Wrong email")]
    assert len(wrong) == 4 and len(paused) == 6, outcomes  # the fifth failure locked it
    # the right password now waits too, and is not checked either
    assert login._sign_in(db_engine, settings, EMAIL, PASSWORD, "10.0.0.2", throttle) == (
        login._paused(throttle.retry_after(*login.throttle_keys(EMAIL, "10.0.0.2")))
    )
    assert len(checked) == 5


def test_a_right_password_gives_its_reservation_back(db_engine) -> None:
    throttle = LoginThrottle(2, 60, ip_factor=2, engine=db_engine)
    keys = ("acct:a@example.org", "ip:1")
    for _ in range(3):  # more than the account limit: each reservation is given back
        reservation = throttle.reserve(*keys)
        assert reservation.granted and not reservation.reached
        throttle.release(reservation, reset=keys[0])
    assert throttle.reserve(*keys).granted
    locking = throttle.reserve(*keys)
    assert locking.granted and locking.reached  # the second failure reaches the limit of 2
    refused = throttle.reserve(*keys)
    assert not refused.granted and refused.wait == pytest.approx(60, abs=2)
    # refused on the account, so the address was not charged either (all or none)
    assert throttle.reserve("acct:b@example.org", "ip:1").granted
