"""Bank loading and validation: every bad input becomes a Problem with a file, a line and a fix."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from interviewer.banks import model as bankcheck
from interviewer.banks.check import (
    MAX_BANK_BYTES,
    Problem,
    check_paths,
    load_bank,
    load_banks,
)
from interviewer.banks.model import Bank
from interviewer.banks.reference import schema_reference
from interviewer.cli import app
from interviewer.config import get_settings
from interviewer.errors import BankError, UserError

ROOT = Path(__file__).resolve().parents[1]

# Line numbers in the tests below refer to this text; keep it stable.
GOOD = """\
id: dermatology
title: Dermatology consultant screen
domain: medicine
version: 1
description: For board-certified dermatologists.
questions:
  - id: melanoma
    prompt: How do you assess a pigmented lesion for melanoma?
    reference_answer: ABCDE criteria, then dermoscopy.
    follow_ups:
      - trigger: dermoscopy
        prompt: Where does dermoscopy fit in?
    rubric:
      criteria:
        - id: criteria
          description: Applies the ABCDE criteria.
          weight: 2
          levels:
            - {score: 0, descriptor: None recognised.}
            - {score: 1, descriptor: All five.}
          key_points:
            - {id: abcde, text: Asymmetry Border Colour Diameter Evolution.}
            - {id: dermoscopy, text: Uses dermoscopy.}
      red_flags:
        - {id: size-only, description: Size under 6 mm rules it out.}
  - id: biopsy
    prompt: When do you biopsy?
    reference_answer: When a lesion is suspicious or changing.
    rubric:
      criteria:
        - id: indication
          description: Knows the indications.
          weight: 1
          levels:
            - {score: 0, descriptor: No indication.}
            - {score: 2, descriptor: Clear indications.}
"""


# Appended to the last criterion of GOOD: a second criterion with the same id.
SECOND_CRITERION = """\
          levels:
            - {score: 0, descriptor: No indication.}
            - {score: 2, descriptor: Clear indications.}
        - id: indication
          description: Knows the contraindications.
          weight: 1"""


def write(folder: Path, text: str | bytes, name: str = "bank.yaml") -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str, text: str = GOOD) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems_in(folder: Path, text: str | bytes, name: str = "bank.yaml") -> list[Problem]:
    path = write(folder, text, name)
    problems = check_paths([path])
    assert problems, "expected at least one problem"
    for problem in problems:
        assert_well_formed(problem)
    return problems


def assert_well_formed(problem: Problem) -> None:
    """The promise to users: one line that names the file and the line, and says how to fix it."""
    text = str(problem)
    assert "\n" not in text
    assert text.startswith(
        f"{problem.file}:{problem.line}: " if problem.line else f"{problem.file}: "
    )
    assert problem.message.strip()
    assert problem.fix.strip()
    assert "(fix: " in text


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


# --- good banks -----------------------------------------------------------------------------


def test_good_bank_loads(tmp_path: Path) -> None:
    bank = load_bank(write(tmp_path, GOOD))
    assert isinstance(bank, Bank)
    assert bank.id == "dermatology"
    assert [q.id for q in bank.questions] == ["melanoma", "biopsy"]
    assert bank.question("melanoma").rubric.key_point_ids == {"abcde", "dermoscopy"}
    assert check_paths([tmp_path]) == []


def test_load_banks_reads_every_yaml_file_in_folder(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, edit("id: dermatology", "id: derm-two"), "b.yml")
    write(tmp_path, "not a bank", "notes.txt")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "broken: [", "ignored.yaml")
    assert [b.id for b in load_banks(tmp_path)] == ["dermatology", "derm-two"]


def test_dates_and_byte_order_mark_are_fine(tmp_path: Path) -> None:
    text = "\ufeff" + edit("title: Dermatology consultant screen", "title: 2024-02-30")
    assert load_bank(write(tmp_path, text)).title == "2024-02-30"


def test_docs_example_is_a_valid_bank(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "question-banks.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example
    bank = load_bank(write(tmp_path, example.group(1)))
    assert bank.questions[0].follow_ups[0].trigger == "dermoscopy"


# --- one problem each, at the right line ----------------------------------------------------


def test_invalid_yaml_reports_parser_line(tmp_path: Path) -> None:
    problem = only(
        problems_in(tmp_path, edit("    prompt: When do you biopsy?", "    prompt: [oops"))
    )
    assert problem.line in (27, 28)
    assert "invalid YAML" in problem.message


def test_bad_indentation_reports_line(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("domain: medicine", "  domain: medicine")))
    assert problem.line == 3
    assert "indentation" in problem.fix


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("weight: 2", "wieght: 2")))
    assert problem.line == 17
    assert "unknown key 'wieght'" in problem.message
    assert "did you mean 'weight'" in problem.fix
    assert "questions[melanoma].rubric.criteria[criteria]" in problem.message


def test_unknown_key_without_a_near_miss(tmp_path: Path) -> None:
    text = edit("weight: 2", "weight: 2\n          colour: red")
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 18
    assert "remove it or correct its spelling" in problem.fix


def test_unquoted_comma_in_flow_mapping_is_explained(tmp_path: Path) -> None:
    text = edit("{score: 1, descriptor: All five.}", "{score: 1, descriptor: All five, correct.}")
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 20
    assert "quotes" in problem.fix


@pytest.mark.parametrize(
    ("old", "new", "kind", "line"),
    [
        ("  - id: biopsy", "  - id: melanoma", "question", 26),
        ("weight: 1", "weight: 1\n" + SECOND_CRITERION, "criterion", 37),
        ("{id: abcde, text: Asym", "{id: dermoscopy, text: Asym", "key point", 23),
    ],
)
def test_duplicate_ids(tmp_path: Path, old: str, new: str, kind: str, line: int) -> None:
    problem = only(problems_in(tmp_path, edit(old, new)))
    assert problem.line == line
    assert f"duplicate {kind} id" in problem.message
    assert "first on line" in problem.message


def test_duplicate_key_point_across_criteria_and_red_flags(tmp_path: Path) -> None:
    text = edit(
        "        - {id: size-only, description: Size under 6 mm rules it out.}",
        "        - {id: size-only, description: Size under 6 mm rules it out.}\n"
        "        - {id: size-only, description: Again.}",
    )
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 26
    assert "duplicate red flag id 'size-only'" in problem.message


def test_duplicate_level_scores(tmp_path: Path) -> None:
    problem = only(
        problems_in(
            tmp_path, edit("{score: 1, descriptor: All five.}", "{score: 0, descriptor: All five.}")
        )
    )
    assert problem.line == 20
    assert "different score" in problem.fix


def test_duplicate_bank_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    problem = only(check_paths([tmp_path]))
    assert_well_formed(problem)
    assert problem.file == tmp_path / "b.yaml"
    assert problem.line == 1
    assert f"{tmp_path / 'a.yaml'}:1" in problem.message
    with pytest.raises(BankError, match="already used"):
        load_banks(tmp_path)


def test_same_file_given_twice_is_checked_once(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert check_paths([path, tmp_path]) == []


def test_duplicate_yaml_keys_are_caught(tmp_path: Path) -> None:
    text = edit(
        "    prompt: When do you biopsy?",
        "    prompt: When do you biopsy?\n    prompt: Again?",
    )
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 28
    assert "duplicate key 'prompt' (first on line 27)" in problem.message


def test_missing_rubric(tmp_path: Path) -> None:
    lines = GOOD.splitlines(keepends=True)
    text = "".join(lines[:28])  # the second question, without its rubric
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 26
    assert "missing required key 'rubric'" in problem.message
    assert "rubric:" in problem.fix


@pytest.mark.parametrize("weight", ["0", "-1", "-0.5"])
def test_weight_must_be_positive(tmp_path: Path, weight: str) -> None:
    problem = only(problems_in(tmp_path, edit("weight: 2", f"weight: {weight}")))
    assert problem.line == 17
    assert "greater than 0" in problem.message
    assert "greater than 0" in problem.fix


@pytest.mark.parametrize("prompt", ['""', "' '", "null"])
def test_empty_prompt(tmp_path: Path, prompt: str) -> None:
    problem = only(problems_in(tmp_path, edit("prompt: When do you biopsy?", f"prompt: {prompt}")))
    assert problem.line == 27
    assert "questions[biopsy].prompt" in problem.message


def test_number_where_text_belongs(tmp_path: Path) -> None:
    problem = only(
        problems_in(tmp_path, edit("title: Dermatology consultant screen", "title: yes"))
    )
    assert problem.line == 2
    assert "quotes" in problem.fix


def test_bad_id_explains_the_id_rules(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("  - id: biopsy", "  - id: Biopsy Q")))
    assert problem.line == 26
    assert "lowercase" in problem.fix


def test_follow_up_trigger_must_be_a_key_point(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("trigger: dermoscopy", "trigger: dermoscpy")))
    assert problem.line == 11
    assert "'dermoscpy' is not a key point" in problem.message
    assert "did you mean 'dermoscopy'" in problem.fix


def test_follow_up_on_question_without_key_points(tmp_path: Path) -> None:
    text = edit(
        "    prompt: When do you biopsy?",
        "    prompt: When do you biopsy?\n"
        "    follow_ups:\n"
        "      - {trigger: size, prompt: Size matters.}",
    )
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 29
    assert "none yet" in problem.fix


def test_non_utf8_file(tmp_path: Path) -> None:
    data = GOOD.replace("medicine", "m\xe9decine").encode("latin-1")
    problem = only(problems_in(tmp_path, data))
    assert (problem.line, problem.column) == (3, 10)
    assert "UTF-8" in problem.message
    assert "iconv" in problem.fix


def test_control_character(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("domain: medicine", "domain: medi\x07cine")))
    assert problem.line == 3
    assert "U+0007" in problem.message


def test_huge_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: no 50 MB actually written

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    problem = only(check_paths([path]))
    assert_well_formed(problem)
    assert problem.line == 1
    assert "52.4 MB" in problem.message


def test_size_cap_boundary(tmp_path: Path) -> None:
    text = GOOD + "#" * (MAX_BANK_BYTES - len(GOOD.encode()))
    assert check_paths([write(tmp_path, text)]) == []
    assert "MB" in only(problems_in(tmp_path, text + "#")).message


def test_folder_without_banks(tmp_path: Path) -> None:
    write(tmp_path, "hello", "readme.txt")
    problem = only(check_paths([tmp_path]))
    assert_well_formed(problem)
    assert (problem.file, problem.line) == (tmp_path, 0)
    assert "no bank files" in problem.message
    with pytest.raises(BankError, match="no bank files"):
        load_banks(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    problem = only(check_paths([tmp_path / "nope"]))
    assert_well_formed(problem)
    assert "no such file or folder" in problem.message
    with pytest.raises(BankError, match="nope"):
        load_bank(tmp_path / "nope.yaml")
    with pytest.raises(BankError, match="nope"):
        load_banks(tmp_path / "nope")


def test_list_instead_of_mapping(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, "- id: dermatology\n  title: x\n"))
    assert problem.line == 1
    assert "a list" in problem.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n...\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert "no bank" in only(problems_in(tmp_path, text)).message


def test_scalar_file(tmp_path: Path) -> None:
    assert "single value" in only(problems_in(tmp_path, "just some text\n")).message


def test_two_documents(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, GOOD + "---\n" + GOOD))
    assert problem.line == len(GOOD.splitlines()) + 1


def test_billion_laughs_is_refused_at_the_first_alias(tmp_path: Path) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        bomb += f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    problem = only(problems_in(tmp_path, bomb))
    assert problem.line == 2
    assert "alias" in problem.message


def test_tags_are_refused(tmp_path: Path) -> None:
    text = edit("domain: medicine", "domain: !!python/object/apply:os.system [echo hi]")
    problem = only(problems_in(tmp_path, text))
    assert problem.line == 3
    assert "tag" in problem.message


def test_deep_nesting(tmp_path: Path) -> None:
    assert only(problems_in(tmp_path, "a: " + "[" * 20000))


def test_number_yaml_cannot_read(tmp_path: Path) -> None:
    problem = only(problems_in(tmp_path, edit("version: 1", "version: 0b_")))
    assert problem.line == 4
    assert "quotes" in problem.fix


def test_every_problem_at_once(tmp_path: Path) -> None:
    text = GOOD
    for old, new in [
        ("title: Dermatology consultant screen", "title: ''"),
        ("weight: 2", "weight: 0"),
        ("trigger: dermoscopy", "trigger: nothing"),
        ("  - id: biopsy", "  - id: melanoma"),
        ("        - id: indication", "        - id: indication\n          colour: red"),
    ]:
        text = edit(old, new, text)
    problems = problems_in(tmp_path, text)
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert [p.line for p in problems] == [2, 11, 17, 26, 32]


def test_load_bank_error_is_one_line_naming_file_line_and_command(tmp_path: Path) -> None:
    path = write(tmp_path, edit("weight: 2", "weight: 0"))
    with pytest.raises(BankError) as info:
        load_bank(path)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert "\n" not in message
    assert message.startswith(f"{path}:17: ")
    assert f"interviewer bank validate {path}" in message


def test_load_bank_refuses_folder(tmp_path: Path) -> None:
    with pytest.raises(BankError, match="folder"):
        load_bank(tmp_path)


# --- never anything but Problems ------------------------------------------------------------

YAMLISH = st.lists(
    st.sampled_from(
        [
            *"abcz019 -:,[]{}&*!|>'\"#%@`?\n\t.\\_~=<\u00e9\x00\x85\u2028\ufeff",
            *["id", "questions", "rubric", "criteria", "\n  - ", ": ", "<<", "---", "...", "!!"],
        ]
    ),
    max_size=120,
).map("".join)

FIELD_NAMES = sorted({name for m in bankcheck.SCHEMA_MODELS for name in m.model_fields})
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2000),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["abc", "dermoscopy", "", " "]),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(FIELD_NAMES), st.integers(0, 3)), inner, max_size=6
        ),
    ),
    max_leaves=40,
)


def problems_for_bytes(data: bytes) -> list[Problem]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_bytes(data)
        problems = check_paths([path])
    for problem in problems:
        assert isinstance(problem, Problem)
        assert_well_formed(problem)
        assert problem.line >= 1
    return problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=500))
def test_arbitrary_bytes_give_problems_not_exceptions(data: bytes) -> None:
    problems_for_bytes(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_yamlish_text_gives_problems_not_exceptions(text: str) -> None:
    problems_for_bytes(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), STRUCTURES, max_size=8))
def test_bank_shaped_yaml_gives_problems_not_exceptions(data: dict) -> None:
    problems_for_bytes(yaml.safe_dump(data, allow_unicode=True).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 20), SCALARS)
def test_damaged_good_bank_gives_problems_not_exceptions(
    start: int, length: int, junk: object
) -> None:
    problems_for_bytes((GOOD[:start] + str(junk) + GOOD[start + length :]).encode())


# --- CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_validate_ok(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    result = runner.invoke(app, ["bank", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 bank OK"


def test_cli_validate_reports_every_problem_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path, edit("weight: 2", "weight: 0"), "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    result = runner.invoke(app, ["bank", "validate", str(tmp_path), str(tmp_path / "nope")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{path}:17: ")
    assert "(fix: " in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'b.yaml'}:1: bank id 'dermatology' is already used")
    assert lines[2].startswith(f"{tmp_path / 'nope'}: no such file")
    assert lines[-1] == "3 problems in 3 paths; 0 banks OK"


def test_cli_defaults_to_settings_banks_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTERVIEWER_BANKS_DIR", raising=False)
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["bank", "validate"])
        assert result.exit_code == 1
        assert "question_banks: no such file or folder" in result.output
        (tmp_path / "question_banks").mkdir()
        write(tmp_path / "question_banks", GOOD)
        result = runner.invoke(app, ["bank", "validate"])
        assert result.exit_code == 0, result.output
        assert "1 bank OK" in result.output
    finally:
        get_settings.cache_clear()


def test_cli_list_and_show(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, edit("id: dermatology", "id: markup-[bold]x"), "broken.yaml")
    result = runner.invoke(app, ["bank", "list", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "dermatology" in result.output
    assert "Dermatology" in result.output
    assert "bank validate" in result.output  # the broken file is pointed out, not hidden

    result = runner.invoke(app, ["bank", "show", "dermatology", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for text in ("melanoma", "biopsy", "How do you assess", "criteria", "size-only", "dermoscopy"):
        assert text in result.output

    result = runner.invoke(app, ["bank", "show", "nope", str(tmp_path)])
    assert result.exit_code == 1
    assert "no bank with id 'nope'" in result.output
    assert "dermatology" in result.output


def test_cli_show_prints_markup_literally(tmp_path: Path) -> None:
    write(tmp_path, edit("When do you biopsy?", "When do you [bold]biopsy[/bold]?"))
    result = runner.invoke(app, ["bank", "show", "dermatology", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "[bold]biopsy[/bold]" in result.output


# --- docs -----------------------------------------------------------------------------------


def test_docs_field_reference_matches_models() -> None:
    doc = (ROOT / "docs" / "question-banks.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- schema:begin -->\n(.*)<!-- schema:end -->", doc, re.S)
    assert block, "docs/question-banks.md lost its schema markers"
    assert block.group(1) == schema_reference(), (
        "docs/question-banks.md is out of date: paste the output of `interviewer bank schema` "
        "between the schema markers"
    )


@pytest.mark.parametrize("model", bankcheck.SCHEMA_MODELS, ids=lambda m: m.__name__)
def test_every_field_is_documented_with_a_meaning(model: type) -> None:
    doc = (ROOT / "docs" / "question-banks.md").read_text(encoding="utf-8")
    section = doc.split(f"### {model.__name__}\n", 1)[1].split("###", 1)[0]
    for name in model.model_fields:
        row = next((r for r in section.splitlines() if r.startswith(f"| `{name}` |")), None)
        assert row, f"{model.__name__}.{name} is missing from docs/question-banks.md"
        assert row.rstrip(" |").split("|")[-1].strip(), f"{model.__name__}.{name} has no meaning"


def test_schema_models_cover_every_model_reachable_from_bank() -> None:
    seen, todo = set(), [Bank]
    while todo:
        model = todo.pop()
        seen.add(model)
        for info in model.model_fields.values():
            inner = bankcheck._inner_type(info)
            if isinstance(inner, type) and issubclass(inner, Bank.__base__) and inner not in seen:
                todo.append(inner)
    assert seen == set(bankcheck.SCHEMA_MODELS)


def test_cli_list_without_loadable_banks_fails_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, "- not a bank\n")
    result = runner.invoke(app, ["bank", "list", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"no bank in {tmp_path} loads (1 problem); run `interviewer bank validate {tmp_path}`"
    )


def test_shipped_banks_are_valid() -> None:
    folder = ROOT / "question_banks"
    if not folder.is_dir() or not list(folder.glob("*.y*ml")):
        pytest.skip("no banks in question_banks/ yet")
    assert [str(p) for p in check_paths([folder])] == []
    assert len({b.id for b in load_banks(folder)}) == len(load_banks(folder))
