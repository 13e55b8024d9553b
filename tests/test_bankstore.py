"""Drafts (YAML files) and published versions (database) stay consistent: no edit in either
place is lost, published versions never change, and diffs read per question and criterion.

Runs on SQLite and on the real PostgreSQL server (``db_engine``)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from interviewer.banks.check import check_text
from interviewer.banks.diff import diff_banks, word_diff
from interviewer.banks.drafts import BankStore, DraftConflict, PublishRefused
from interviewer.banks.yamltext import dump_yaml, parse_yaml
from interviewer.errors import BankError
from interviewer.store import repo
from interviewer.store.db import session_scope
from interviewer.store.models import AuditLog, BankVersion, LockedBankVersion

SHIPPED = Path(__file__).resolve().parent.parent / "question_banks"

SMALL = """\
# Header comment kept by form saves.
id: small
title: Small bank
domain: test
version: 1
description: For tests.
questions:
  - id: q1
    prompt: What is the first question?
    reference_answer: The first answer.
    follow_ups:
      - trigger: kp1
        prompt: Tell me about kp1.
    rubric:
      criteria:
        - id: c1
          description: Accuracy.
          weight: 2
          levels:
            - {score: 0, descriptor: Wrong.}
            - {score: 1, descriptor: Right.}
          key_points:
            - {id: kp1, text: The first point.}
            - {id: kp2, text: The second point.}
      red_flags:
        - {id: rf1, description: A myth., penalty: 0.5}
"""


@pytest.fixture
def store(db_engine, tmp_path: Path) -> BankStore:
    banks = tmp_path / "banks"
    banks.mkdir()
    (banks / "small.yaml").write_text(SMALL)
    return BankStore(banks, db_engine, tmp_path / "locks")


def _versions(store: BankStore) -> list[BankVersion]:
    with session_scope(store.engine) as s:
        return list(s.scalars(select(BankVersion).order_by(BankVersion.version)))


def test_publish_then_file_edit_needs_a_new_version(store: BankStore) -> None:
    draft = store.draft("small")
    published = store.publish("small", draft.sha, user_id=None)
    assert published.created
    row = published.row
    assert (row.bank_id, row.version) == ("small", 1)
    assert store.summary("small").state == "published"
    again = store.publish("small", draft.sha)
    assert not again.created and again.row.id == row.id
    with session_scope(store.engine) as s:
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "bank.publish")).one()
        assert audit.target == "bank:small:v1"

    # a domain lead edits the file in git, forgetting to bump the version
    path = store.banks_dir / "small.yaml"
    path.write_text(SMALL.replace("What is the first question?", "What is question one?"))
    summary = store.summary("small")
    assert summary.state == "invalid"
    checked = store.check("small", path.read_text())
    (issue,) = checked.issues
    assert "version 1 is already published with different content" in issue.message
    assert "version: 2" in issue.fix and issue.line == 5 and issue.path == "version"
    with pytest.raises(PublishRefused, match="version: 2"):
        store.publish("small", store.draft("small").sha)
    assert [v.version for v in _versions(store)] == [1]

    path.write_text(path.read_text().replace("version: 1", "version: 2"))
    assert store.summary("small").state == "ready"
    store.publish("small", store.draft("small").sha)
    v1, v2 = _versions(store)
    assert v1.content["questions"][0]["prompt"] == "What is the first question?"
    assert v2.content["questions"][0]["prompt"] == "What is question one?"

    # the old version again (git revert) is recognised, not republished
    path.write_text(SMALL)
    assert store.summary("small").state == "older"


def test_stale_save_is_refused_and_keeps_the_file(store: BankStore) -> None:
    loaded = store.draft("small")
    on_disk = SMALL.replace("Small bank", "Edited in git")
    (store.banks_dir / "small.yaml").write_text(on_disk)
    with pytest.raises(DraftConflict) as caught:
        store.save_draft("small", SMALL.replace("Small bank", "Edited in the browser"), loaded.sha)
    assert caught.value.current_text == on_disk
    assert "changed since this page loaded" in str(caught.value)
    assert (store.banks_dir / "small.yaml").read_text() == on_disk
    # with the sha of what is on disk now, the save goes through
    saved = store.save_draft("small", "x: 1\n", caught.value.current_sha)
    assert (store.banks_dir / "small.yaml").read_text() == "x: 1\n"
    assert saved.sha == store.draft("small").sha


def test_concurrent_saves_one_wins(store: BankStore) -> None:
    base = store.draft("small").sha
    results: dict[int, str] = {}
    barrier = threading.Barrier(6)

    def save(i: int) -> None:
        barrier.wait()
        try:
            store.save_draft("small", SMALL.replace("Small bank", f"Tab {i}"), base)
            results[i] = "saved"
        except DraftConflict:
            results[i] = "conflict"

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "saved"]
    assert len(results) == 6 and len(winners) == 1
    assert f"Tab {winners[0]}" in (store.banks_dir / "small.yaml").read_text()
    assert not [p for p in store.banks_dir.iterdir() if p.name != "small.yaml"]  # no temp files


def test_unwritable_folder_is_a_clear_error(store: BankStore, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    broken = BankStore(tmp_path / "a-file" / "banks", store.engine, tmp_path / "locks")
    with pytest.raises(BankError, match="writable by the server") as caught:
        broken.create(bank_id="x", title="X", domain="d", description="For x.")
    assert "nothing was changed" in str(caught.value)


def test_publish_checks_the_reviewed_sha(store: BankStore) -> None:
    reviewed = store.draft("small").sha
    (store.banks_dir / "small.yaml").write_text(SMALL.replace("Small bank", "Changed after review"))
    with pytest.raises(DraftConflict, match="changed since you reviewed it"):
        store.publish("small", reviewed)
    assert _versions(store) == []


def test_published_versions_never_change(store: BankStore, db_engine) -> None:
    store.publish("small", store.draft("small").sha)
    bank = check_text(SMALL)[1]
    assert bank is not None
    # same content again: a no-op returning the same row
    with session_scope(db_engine) as s:
        assert repo.publish_bank(s, bank).version == 1
    changed = bank.model_copy(update={"title": "Other"})
    with session_scope(db_engine) as s, pytest.raises(BankError, match="bump `version`"):
        repo.publish_bank(s, changed)
    # once an interview uses it, even a direct update is refused
    with session_scope(db_engine) as s:
        row = s.scalars(select(BankVersion)).one()
        row.locked = True
    with pytest.raises(LockedBankVersion), session_scope(db_engine) as s:
        row = s.scalars(select(BankVersion)).one()
        row.title = "Sneaky"
        s.flush()
    assert _versions(store)[0].title == "Small bank"


def test_bank_only_in_database_gets_a_draft_back(store: BankStore) -> None:
    store.publish("small", store.draft("small").sha)
    (store.banks_dir / "small.yaml").unlink()
    summary = store.summary("small")
    assert summary.state == "no-draft" and summary.versions[0].version == 1
    assert [s.bank_id for s in store.summaries()] == ["small"]
    draft = store.draft_from_version("small", 1, None)
    data = parse_yaml(draft.text)
    assert data["version"] == 2
    assert data["questions"] == _versions(store)[0].content["questions"]
    assert store.summary("small").state == "ready"


def test_deleted_draft_while_editing_is_a_conflict(store: BankStore) -> None:
    sha = store.draft("small").sha
    (store.banks_dir / "small.yaml").unlink()
    with pytest.raises(DraftConflict, match="deleted"):
        store.save_draft("small", SMALL, sha)
    store.save_draft("small", SMALL, None)
    assert (store.banks_dir / "small.yaml").read_text() == SMALL


def test_a_copy_with_the_same_id_blocks_publishing(store: BankStore) -> None:
    (store.banks_dir / "small-copy.yaml").write_text(SMALL.replace("Small bank", "Copy"))
    summary = store.summary("small")
    assert summary.state == "invalid" and summary.draft.file == "small.yaml"
    (issue,) = store.check("small", summary.draft.text).issues
    assert "also used by small-copy.yaml" in issue.message
    with pytest.raises(PublishRefused, match=r"small-copy\.yaml"):
        store.publish("small", summary.draft.sha)
    (store.banks_dir / "small-copy.yaml").unlink()
    assert store.summary("small").state == "ready"


def test_bank_cannot_be_renamed_or_created_twice(store: BankStore) -> None:
    sha = store.draft("small").sha
    with pytest.raises(BankError, match="cannot be renamed"):
        store.save_draft("small", SMALL.replace("id: small", "id: other"), sha)
    with pytest.raises(BankError, match="already exists"):
        store.create(bank_id="small", title="t", domain="d", description="x")
    with pytest.raises(BankError, match="reserved by the web editor"):
        store.create(bank_id="new", title="t", domain="d", description="x")
    with pytest.raises(BankError, match="reserved by the web editor"):
        store.save_draft("import", "id: import\n", None)
    created = store.create(bank_id="fresh", title="Fresh", domain="law", description="For x.")
    assert created.path.name == "fresh.yaml"
    assert store.summary("fresh").state == "ready"


def test_form_dump_keeps_the_schema_order() -> None:
    data = parse_yaml(SMALL)
    shuffled = {k: data[k] for k in sorted(data)}  # what a browser may send back
    shuffled["questions"][0] = {
        k: shuffled["questions"][0][k] for k in sorted(data["questions"][0])
    }
    text = dump_yaml(shuffled)
    assert text.startswith("id: small\ntitle: Small bank\ndomain: test\nversion: 1\n")
    assert text.index("  - id: q1\n    prompt:") > 0
    assert parse_yaml(text) == data


def test_form_only_opens_on_the_shape_of_a_bank() -> None:
    from interviewer.banks.yamltext import form_shape_ok

    data = parse_yaml(SMALL)
    assert form_shape_ok(data)
    data["questions"][0]["rubric"]["criteria"][0]["weight"] = "heavy"  # wrong, but shown
    assert form_shape_ok(data)
    for broken in (
        SMALL.replace("questions:\n", "questions: none\nx:\n"),
        SMALL.replace("    rubric:\n", "    rubric: tbd\n    y:\n"),
        SMALL.replace("description: For tests.", "description: [a, b]"),
    ):
        assert not form_shape_ok(parse_yaml(broken)), broken
    assert not form_shape_ok(None) and not form_shape_ok(["a"])


def test_form_dump_round_trips_every_shipped_bank(tmp_path: Path) -> None:
    for path in sorted(SHIPPED.glob("*.yaml")):
        data = parse_yaml(path.read_text())
        text = dump_yaml(data)
        assert parse_yaml(text) == data, path.name
        problems, bank = check_text(text, path.name)
        assert not problems and bank is not None, path.name


def test_diff_reads_per_question_and_criterion() -> None:
    old = parse_yaml(SMALL)
    new = parse_yaml(
        SMALL.replace("weight: 2", "weight: 3")
        .replace("What is the first question?", "What is the very first question?")
        .replace("            - {id: kp2, text: The second point.}\n", "")
        .replace("penalty: 0.5", "penalty: 0.4")
    )
    new["questions"].append(dict(old["questions"][0], id="q2"))
    sections = {s.title: s for s in diff_banks(old, new)}
    assert set(sections) == {"Question q1", "Question q2"}
    assert sections["Question q2"].status == "added"
    changes = {(c.kind, c.where): c for c in sections["Question q1"].changes}
    assert changes[("changed", "criterion c1 › weight")].old == 2
    assert changes[("changed", "criterion c1 › weight")].new == 3
    assert ("removed", "criterion c1 › key point kp2") in changes
    assert changes[("changed", "red flag rf1 › penalty")].new == 0.4
    prompt = changes[("changed", "prompt")]
    assert ("+", "very ") in prompt.words or ("+", "very") in prompt.words
    assert diff_banks(old, old) == []
    assert word_diff("a b c", "a x c") == [("=", "a "), ("-", "b"), ("+", "x"), ("=", " c")]


def test_header_comment_survives_a_form_save(store: BankStore) -> None:
    from interviewer.banks.yamltext import leading_comments

    draft = store.draft("small")
    text = dump_yaml(parse_yaml(draft.text), leading_comments(draft.text))
    assert text.startswith("# Header comment kept by form saves.\n")
    store.save_draft("small", text, draft.sha)
    assert store.summary("small").state == "ready"


def test_shipped_banks_listed(db_engine, tmp_path: Path) -> None:
    banks = tmp_path / "banks"
    shutil.copytree(SHIPPED, banks)
    store = BankStore(banks, db_engine, tmp_path / "locks")
    summaries = store.summaries()
    assert {s.bank_id for s in summaries} >= {"law", "dermatology"}
    assert all(s.state == "ready" for s in summaries)


def test_usable_banks_and_demo_seeding_survive_a_half_edited_draft(
    store: BankStore, tmp_path: Path
) -> None:
    from web_support import make_settings

    from interviewer.cli.serve import seed_demo

    store.publish("small", store.draft("small").sha)
    path = store.banks_dir / "small.yaml"
    path.write_text(SMALL.replace("weight: 2", "weight: 0"))  # mid-edit: invalid
    (bank,) = store.usable_banks()
    assert bank.questions[0].rubric.criteria[0].weight == 2  # the published version 1
    settings = make_settings(tmp_path, banks_dir=store.banks_dir)
    (link,) = seed_demo(store.engine, settings, "http://127.0.0.1:8000")
    assert link.title == "Small bank (demo)" and "/i/" in link.url

    path.write_text(SMALL.replace("version: 1", "version: 2").replace("Small bank", "Small v2"))
    (bank,) = store.usable_banks()
    assert (bank.version, bank.title) == (2, "Small v2")


def test_cli_status_and_publish(db_url: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from interviewer.cli import app

    banks = tmp_path / "banks"
    banks.mkdir()
    (banks / "small.yaml").write_text(SMALL)
    args = ["--url", db_url, "--banks-dir", str(banks)]
    runner = CliRunner(env={"COLUMNS": "160"})
    status = runner.invoke(app, ["bank", "status", *args])
    assert status.exit_code == 0, status.output
    assert "small.yaml v1" in status.output and "ready to publish" in status.output
    first = runner.invoke(app, ["bank", "publish", "small", *args])
    assert first.exit_code == 0 and "published small version 1" in first.output
    again = runner.invoke(app, ["bank", "publish", "small", *args])
    assert "already published with this content" in again.output
    (banks / "small.yaml").write_text(SMALL.replace("Small bank", "Changed"))
    refused = runner.invoke(app, ["bank", "publish", "small", *args])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "set `version: 2`" in refused.output
    missing = runner.invoke(app, ["bank", "publish", "nope", *args])
    assert missing.exit_code == 1 and "interviewer bank status" in missing.output


def test_two_checkouts_publishing_one_version(store: BankStore, tmp_path: Path) -> None:
    """Two folders (two git checkouts, one database) publish different content as version 1
    at the same moment: one is stored, the other is refused with the fix; nothing is mixed."""
    other_dir = tmp_path / "other-checkout"
    other_dir.mkdir()
    (other_dir / "small.yaml").write_text(SMALL.replace("Small bank", "Other checkout"))
    other = BankStore(other_dir, store.engine, tmp_path / "other-locks")
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def publish(name: str, s: BankStore) -> None:
        sha = s.draft("small").sha
        barrier.wait()
        try:
            s.publish("small", sha)
            outcome[name] = "published"
        except BankError as err:
            outcome[name] = str(err)

    threads = [
        threading.Thread(target=publish, args=("here", store)),
        threading.Thread(target=publish, args=("there", other)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert list(outcome.values()).count("published") == 1, outcome
    refused = next(v for v in outcome.values() if v != "published")
    assert "version" in refused and ("version: 2" in refused or "bump" in refused)
    (row,) = _versions(store)
    winner = "Small bank" if outcome["here"] == "published" else "Other checkout"
    assert row.title == winner
    # the losing checkout now sees why, and the fix
    loser = other if winner == "Small bank" else store
    assert loser.summary("small").state == "invalid"
