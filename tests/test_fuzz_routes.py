"""Every route, as every actor, with generated paths, query strings, forms, JSON and raw bodies
(tests/fuzz_support.py): no 5xx, no traceback text, no applicant data of another opening.

A few thousand cases here, in-process on one app (about a minute at most); `bench/fuzz.py` runs
the larger campaign.
"""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from fuzz_support import Case, Fuzzer
from hypothesis import HealthCheck, given, settings
from test_authz_matrix import make_world

CASES = int(os.environ.get("INTERVIEWER_FUZZ_CASES", "2500"))


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory):
    app, world = make_world(tmp_path_factory.mktemp("fuzz"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Fuzzer(client, world)


def test_every_route_holds_under_generated_input(fuzzer: Fuzzer) -> None:
    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=fuzzer.strategy())
    def holds(case: Case) -> None:
        problems = fuzzer.run(case)
        assert not problems, f"{case.describe()}\n  " + "\n  ".join(problems)

    holds()
    assert fuzzer.tried >= CASES
    # the cases get past the doors too: not everything is a refusal or a 404
    through = sum(n for status, n in fuzzer.statuses.items() if status < 400)
    assert through > fuzzer.tried // 10, fuzzer.statuses
