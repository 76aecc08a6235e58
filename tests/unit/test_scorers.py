"""Scorers: each verdict and its detail, the edge cases, and bad options refused at load."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import UserFacingError
from app.evals import make_case
from app.scorers import Score, extract_json, parse_number, score


def _score(scorer: str, expected: str, reply: str, **options: Any) -> Score:
    return score(make_case("q", expected, scorer, options=options), reply)


def test_exact_ignores_surrounding_whitespace_and_case_by_default() -> None:
    assert _score("exact", "Paris", "  paris\n") == Score(True, "exact match")
    verdict = _score("exact", "Paris", "Paris, France")
    assert verdict.passed is False
    assert verdict.detail == "expected 'Paris', got 'Paris, France'"


def test_exact_can_be_case_sensitive() -> None:
    assert _score("exact", "Paris", "paris", case_sensitive=True).passed is False
    assert _score("exact", "Paris", "Paris", case_sensitive="true").passed is True


def test_contains_is_case_insensitive_by_default() -> None:
    assert _score("contains", "paris", "The capital is PARIS.") == Score(True, "contains 'paris'")
    assert _score("contains", "Lyon", "The capital is Paris.") == Score(False, "'Lyon' not found")
    assert _score("contains", "paris", "PARIS", case_sensitive=False).passed is True
    assert _score("contains", "paris", "PARIS", case_sensitive=True).passed is False


def test_regex_searches_with_flags() -> None:
    assert _score("regex", r"^\d{4}$", "1969").detail == "matched '1969'"
    assert _score("regex", "hello", "HELLO there").passed is False
    assert _score("regex", "hello", "HELLO there", flags="i").passed is True
    assert _score("regex", "a.b", "a\nb").passed is False
    assert _score("regex", "a.b", "a\nb", flags="s").passed is True
    assert _score("regex", "^b$", "a\nb", flags="m").passed is True
    assert _score("regex", "xyz", "abc") == Score(False, "no match for /xyz/")


def test_an_invalid_regex_is_refused_when_the_case_is_made() -> None:
    with pytest.raises(UserFacingError, match=r"invalid regex '\(unclosed'"):
        make_case("q", "(unclosed", "regex")
    with pytest.raises(UserFacingError, match="imsx"):
        make_case("q", "a", "regex", options={"flags": "iq"})
    with pytest.raises(UserFacingError, match="needs a pattern"):
        make_case("q", "", "regex")


def test_json_valid_finds_the_whole_reply_a_fenced_block_or_an_embedded_object() -> None:
    assert _score("json_valid", "", '{"a": 1}') == Score(True, "valid JSON (the whole reply)")
    fenced = 'Sure:\n```json\n{"name": "Ada", "age": 36}\n```\nDone.'
    assert _score("json_valid", "", fenced) == Score(True, "valid JSON (a fenced block)")
    embedded = "Here it is: [1, 2, 3] as asked."
    assert _score("json_valid", "", embedded) == Score(True, "valid JSON (part of the reply)")
    assert _score("json_valid", "", "{name: Ada}") == Score(False, "no valid JSON")
    assert _score("json_valid", "", "") == Score(False, "no valid JSON")


def test_extract_json_skips_brackets_that_do_not_parse() -> None:
    found, value, _where = extract_json('See [note] then {"ok": true}')
    assert found is True
    assert value == {"ok": True}


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def test_json_schema_validates_the_json_in_the_reply() -> None:
    good = '```json\n{"name": "Ada", "age": 36}\n```'
    assert _score("json_schema", "", good, schema=SCHEMA) == Score(True, "matches the schema")
    missing = _score("json_schema", "", '{"name": "Ada"}', schema=SCHEMA)
    assert missing == Score(False, "'age' is a required property")
    wrong_type = _score("json_schema", "", '{"name": "Ada", "age": "old"}', schema=SCHEMA)
    assert wrong_type == Score(False, "'old' is not of type 'integer' at age")
    assert _score("json_schema", "", "no json", schema=SCHEMA) == Score(False, "no valid JSON")


def test_json_schema_accepts_the_schema_as_json_text_and_refuses_a_bad_one() -> None:
    case = make_case("q", "", "json_schema", options={"schema": '{"type": "array"}'})
    assert case.options == {"schema": {"type": "array"}}
    with pytest.raises(UserFacingError, match="not a valid JSON Schema"):
        make_case("q", "", "json_schema", options={"schema": {"type": "nonsense"}})
    with pytest.raises(UserFacingError, match="needs a 'schema'"):
        make_case("q", "", "json_schema")
    with pytest.raises(UserFacingError, match="not valid JSON"):
        make_case("q", "", "json_schema", options={"schema": "{oops"})


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 42.", 42.0),
        ("-17 degrees", -17.0),
        ("about 3.14159", 3.14159),
        ("1,234,567 people", 1234567.0),
        ("6.02e23 atoms", 6.02e23),
        ("x = -2.5e-3", -0.0025),
        ("\u22127", -7.0),
        ("COVID-19", 19.0),
        ("half is .5", 0.5),
        ("1,2,3", 1.0),
        ("no digits here", None),
    ],
)
def test_parse_number_reads_the_first_number(text: str, number: float | None) -> None:
    assert parse_number(text) == number


def test_numeric_within_an_absolute_tolerance() -> None:
    assert _score("numeric", "42", "It is 41.7", tolerance=0.5) == Score(
        True, "expected 42 ± 0.5, got 41.7"
    )
    assert _score("numeric", "42", "It is 41.4", tolerance="0.5").passed is False
    assert _score("numeric", "42", "42") == Score(True, "expected 42, got 42")
    # The last number is the answer; float noise far below any tolerance is equality.
    assert _score("numeric", "0.3", "0.1 + 0.2 = 0.30000000000000004").passed is True
    assert _score("numeric", "0.3", "0.1 + 0.2 = 0.31").passed is False


def test_numeric_reads_separators_and_signs() -> None:
    assert _score("numeric", "1234", "The total is 1,234 euros.").passed is True
    assert _score("numeric", "-40", "It is -40 degrees").passed is True
    assert _score("numeric", "1e6", "1,000,000").passed is True


def test_numeric_relative_tolerance_scales_with_the_expected_value() -> None:
    verdict = _score("numeric", "1000", "1015", relative_tolerance=0.02)
    assert verdict == Score(True, "expected 1000 ± 20, got 1015")
    assert _score("numeric", "1000", "1021", relative_tolerance=0.02).passed is False


def test_numeric_without_a_number_in_the_reply_fails() -> None:
    assert _score("numeric", "7", "seven", tolerance=1) == Score(
        False, "expected 7 ± 1, no number in the reply"
    )


def test_numeric_options_are_checked_at_load() -> None:
    with pytest.raises(UserFacingError, match="not a number"):
        make_case("q", "forty-two", "numeric")
    with pytest.raises(UserFacingError, match="'tolerance' must be a number of 0 or more"):
        make_case("q", "42", "numeric", options={"tolerance": -1})
    with pytest.raises(UserFacingError, match="'tolerance' must be a number"):
        make_case("q", "42", "numeric", options={"tolerance": "lots"})


def test_options_of_another_scorer_are_refused() -> None:
    with pytest.raises(UserFacingError, match="'tolerance' does not apply to the contains"):
        make_case("q", "x", "contains", options={"tolerance": 1})
    with pytest.raises(UserFacingError, match="it takes no options"):
        make_case("q", "", "json_valid", options={"flags": "i"})


def test_manual_cases_wait_for_a_judgment() -> None:
    assert _score("manual", "a good haiku", "anything") == Score(None, "waiting for a judgment")


def test_unknown_scorers_list_the_known_ones() -> None:
    with pytest.raises(UserFacingError, match="exact, contains, regex, json_valid"):
        make_case("q", "x", "fuzzy")


def test_numeric_reads_the_last_number_unless_told_first() -> None:
    from app.evals import make_case

    worked = "17 + 25 = 42"
    last = make_case(prompt="17 + 25?", expected="42", scorer="numeric")
    assert score(last, worked).passed is True
    first = make_case(prompt="17 + 25?", expected="42", scorer="numeric", options={"pick": "first"})
    assert score(first, worked).passed is False
    assert "got 17" in score(first, worked).detail


def test_numeric_pick_must_be_first_or_last() -> None:
    from app.errors import UserFacingError
    from app.evals import make_case

    with pytest.raises(UserFacingError, match="pick"):
        make_case(prompt="x", expected="1", scorer="numeric", options={"pick": "middle"})
