"""Eval-set files: JSONL and CSV loading, line-numbered errors, BOM, and saving back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import UserFacingError
from app.evals import CaseSpec, load_cases, make_case, save_cases

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "evals"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_jsonl_lines_become_cases_with_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "set.jsonl",
        '{"prompt": "Capital of France?", "expected": "Paris"}\n'
        "\n"
        '{"prompt": "2+2?", "expected": 4, "scorer": "numeric", "tolerance": 0.1,'
        ' "system": "Answer with a number."}\n'
        '{"prompt": "Say hi", "expected": "^hi", "scorer": "REGEX", "flags": "i",'
        ' "system_prompt": "Be brief."}\n',
    )
    assert load_cases(path) == [
        CaseSpec("Capital of France?", "Paris", "contains", "", {}),
        CaseSpec("2+2?", "4", "numeric", "Answer with a number.", {"tolerance": 0.1}),
        CaseSpec("Say hi", "^hi", "regex", "Be brief.", {"flags": "i"}),
    ]


def test_a_bom_is_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.jsonl", '{"prompt": "p", "expected": "e"}\n', "utf-8-sig")
    assert load_cases(path) == [CaseSpec("p", "e")]
    csv_path = _write(tmp_path / "bom.csv", "prompt,expected\np,e\n", "utf-8-sig")
    assert load_cases(csv_path) == [CaseSpec("p", "e")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"expected": "x"}', "line 2: 'prompt' is missing"),
        ('{"prompt": "  "}', "line 2: The prompt is empty"),
        (
            '{"prompt": "p", "scorer": "fuzzy"}',
            "line 2: Unknown scorer 'fuzzy'; use one of: exact,",
        ),
        ('{"prompt": "p", "scorer": "regex", "expected": "(("}', "line 2: invalid regex"),
        ('{"prompt": "p", "scorer": "json_schema", "schema": {"type": 5}}', "not a valid JSON"),
        ('{"prompt": "p", "tolerence": 1}', "line 2: unknown field 'tolerence'"),
        ('{"prompt": "p", "expected": ["a"]}', "line 2: 'expected' must be text or a number"),
    ],
)
def test_a_bad_line_names_the_file_the_line_and_the_problem(
    tmp_path: Path, line: str, message: str
) -> None:
    path = _write(tmp_path / "bad.jsonl", '{"prompt": "ok"}\n' + line + "\n")
    with pytest.raises(UserFacingError) as caught:
        load_cases(path)
    assert caught.value.message.startswith(f"{path}, line 2: ")
    assert message in caught.value.message


def test_csv_rows_with_header_columns_and_empty_cells(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "set.csv",
        "prompt,expected,scorer,system,tolerance,case_sensitive,schema\n"
        '"Capital of Italy, please",Rome,exact,,,true,\n'
        ",,,,,,\n"
        "Pi to two places,3.14,numeric,Numbers only.,0.005,,\n"
        'Give JSON,,json_schema,,,,"{""type"": ""object""}"\n',
    )
    assert load_cases(path) == [
        CaseSpec("Capital of Italy, please", "Rome", "exact", "", {"case_sensitive": True}),
        CaseSpec("Pi to two places", "3.14", "numeric", "Numbers only.", {"tolerance": 0.005}),
        CaseSpec("Give JSON", "", "json_schema", "", {"schema": {"type": "object"}}),
    ]


def test_a_bad_csv_row_gives_its_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.csv", "prompt,expected,scorer\nok,x,contains\nq,x,numeric\n")
    with pytest.raises(UserFacingError, match=r"bad\.csv, line 3: expected 'x' is not a number"):
        load_cases(path)


def test_a_csv_without_a_prompt_column_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "noprompt.csv", "question,answer\nq,a\n")
    with pytest.raises(UserFacingError, match="line 1: the header row needs a 'prompt' column"):
        load_cases(path)


def test_missing_empty_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(UserFacingError, match="does not exist"):
        load_cases(tmp_path / "nope.jsonl")
    with pytest.raises(UserFacingError, match="holds no cases"):
        load_cases(_write(tmp_path / "empty.jsonl", "\n\n"))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"prompt": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(UserFacingError, match="Save it as UTF-8"):
        load_cases(latin)


CASES = [
    make_case("Capital of France?", "Paris", "exact", options={"case_sensitive": True}),
    make_case('Say "hi", then a comma, then a newline\n', "hi", "contains", "Be brief."),
    make_case("Year of the moon landing", r"\b1969\b", "regex", options={"flags": "i"}),
    make_case("JSON please", "", "json_valid"),
    make_case("Person", "", "json_schema", options={"schema": {"type": "object"}}),
    make_case("2/3", "0.6667", "numeric", options={"tolerance": 0.001, "relative_tolerance": 0.0}),
    make_case("Write a haiku", "judge the imagery", "manual"),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_saved_sets_load_back_unchanged(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"round{suffix}"
    save_cases(path, CASES)
    assert load_cases(path) == CASES


def test_saved_jsonl_puts_options_at_the_top_level(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    save_cases(path, CASES[:1])
    line = json.loads(path.read_text(encoding="utf-8"))
    assert line == {
        "prompt": "Capital of France?",
        "expected": "Paris",
        "scorer": "exact",
        "case_sensitive": True,
    }


def test_the_example_set_loads_with_every_scorer() -> None:
    cases = load_cases(RESOURCES / "basics.jsonl")
    assert len(cases) == 10
    assert {c.scorer for c in cases} >= {"exact", "contains", "regex", "json_valid", "numeric"}
    assert "manual" in {c.scorer for c in cases}
