"""Scoring a reply against an eval case: exact, contains, regex, JSON, JSON schema, numeric, manual.

`check_options` runs when a case is loaded or edited, so a bad regex, a bad schema or a
non-numeric expected value is refused then, with a message, rather than when a model has
already spent minutes answering. `score` never raises on a reply: whatever the model wrote,
it gets a verdict and a few words that explain it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match

from app.errors import UserFacingError

if TYPE_CHECKING:
    from app.evals import CaseSpec

SCORERS = ("exact", "contains", "regex", "json_valid", "json_schema", "numeric", "manual")
OPTION_NAMES = ("case_sensitive", "flags", "tolerance", "relative_tolerance", "schema", "pick")
SCORER_OPTIONS: dict[str, tuple[str, ...]] = {
    "exact": ("case_sensitive",),
    "contains": ("case_sensitive",),
    "regex": ("flags",),
    "json_valid": (),
    "json_schema": ("schema",),
    "numeric": ("tolerance", "relative_tolerance", "pick"),
    "manual": (),
}
REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}

# A number as people and models write it: -1,234.5, 3.14, .5, 6.02e23, −7 (Unicode minus).
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-+\u2212]?)"
    r"(?P<body>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?P<exp>[eE][-+]?\d+)?"
)
_FENCED_JSON = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_MAX_JSON_STARTS = 200


@dataclass(frozen=True, slots=True)
class Score:
    """A verdict: `passed` None for a manual case not judged yet; `detail` says why."""

    passed: bool | None
    detail: str


def check_options(scorer: str, expected: str, options: dict[str, Any]) -> dict[str, Any]:
    """The scorer's options, normalized (CSV text turned into numbers, booleans, a schema).

    Raises:
        UserFacingError: an option the scorer does not take, a value of the wrong kind, an
            invalid regex or JSON schema, or a `numeric` case whose expected is not a number.
    """
    allowed = SCORER_OPTIONS[scorer]
    stray = [name for name in options if name not in allowed]
    if stray:
        takes = ", ".join(allowed) if allowed else "no options"
        raise UserFacingError(
            f"{stray[0]!r} does not apply to the {scorer} scorer (it takes {takes})"
        )
    out: dict[str, Any] = {}
    if "case_sensitive" in options:
        out["case_sensitive"] = _boolean("case_sensitive", options["case_sensitive"])
    for name in ("tolerance", "relative_tolerance"):
        if name in options:
            out[name] = _non_negative(name, options[name])
    if "pick" in options:
        if options["pick"] not in ("first", "last"):
            raise UserFacingError(f'pick must be "first" or "last", not {options["pick"]!r}')
        out["pick"] = options["pick"]
    if scorer == "regex":
        flags = options.get("flags", "")
        compile_pattern(expected, flags)
        if flags:
            out["flags"] = flags
    elif scorer == "json_schema":
        out["schema"] = _checked_schema(options.get("schema"))
    elif scorer == "numeric" and parse_number(expected.strip(), whole=True) is None:
        raise UserFacingError(
            f"expected {expected!r} is not a number (the numeric scorer needs one)"
        )
    return out


def compile_pattern(pattern: str, flags: object = "") -> re.Pattern[str]:
    """A regex case's pattern with its flags (letters of "imsx").

    Raises:
        UserFacingError: an empty or invalid pattern, or an unknown flag.
    """
    if not isinstance(flags, str) or any(letter not in REGEX_FLAGS for letter in flags):
        raise UserFacingError(f'flags {flags!r} must be letters of "imsx" (e.g. "i")')
    if not pattern:
        raise UserFacingError("the regex scorer needs a pattern in 'expected'")
    value = 0
    for letter in flags:
        value |= REGEX_FLAGS[letter]
    try:
        return re.compile(pattern, value)
    except re.error as exc:
        raise UserFacingError(f"invalid regex {pattern!r}: {exc}") from exc


def _boolean(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0"):
        return False
    raise UserFacingError(f"{name!r} must be true or false, not {value!r}")


def _non_negative(name: str, value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        number = parse_number(value.strip(), whole=True)
    if number is None or not math.isfinite(number) or number < 0:
        raise UserFacingError(f"{name!r} must be a number of 0 or more, not {value!r}")
    return number


def _checked_schema(raw: object) -> dict[str, Any] | bool:
    if raw is None:
        raise UserFacingError("the json_schema scorer needs a 'schema' (a JSON Schema object)")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserFacingError(f"'schema' is not valid JSON ({exc.msg})") from exc
    if not isinstance(raw, dict | bool):
        raise UserFacingError("'schema' must be a JSON object")
    try:
        jsonschema.validators.validator_for(raw).check_schema(raw)
    except SchemaError as exc:
        raise UserFacingError(f"'schema' is not a valid JSON Schema: {exc.message}") from exc
    return raw


def parse_number(text: str, whole: bool = False, last: bool = False) -> float | None:
    """The first number in `text` (the last with `last`; the whole of it when `whole`), or
    None.

    Understands signs (also the Unicode minus), decimals, thousands separators ("1,234") and
    scientific notation. A hyphen glued to a word is not a minus ("COVID-19" gives 19).
    """
    if whole:
        match = _NUMBER.fullmatch(text)
    elif last:
        match = None
        for match in _NUMBER.finditer(text):  # noqa: B007 — the loop keeps the last one
            pass
    else:
        match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match["body"].replace(",", "") + (match["exp"] or ""))
    sign = match["sign"]
    start = match.start()
    if sign and start > 0 and text[start - 1].isalnum():
        sign = ""  # "x-5" is a word and a number, not minus five
    return -value if sign in ("-", "\u2212") else value


def extract_json(reply: str) -> tuple[bool, Any, str]:
    """Find JSON in a reply: the whole reply, else a fenced ```json block, else the first
    `{...}` or `[...]` that parses. Returns (found, value, where)."""
    text = reply.strip()
    try:
        return True, json.loads(text), "the whole reply"
    except json.JSONDecodeError:
        pass
    for block in _FENCED_JSON.findall(reply):
        try:
            return True, json.loads(block), "a fenced block"
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(reply) if ch in "{["][:_MAX_JSON_STARTS]
    for start in starts:
        try:
            value, _end = decoder.raw_decode(reply, start)
        except json.JSONDecodeError:
            continue
        return True, value, "part of the reply"
    return False, None, ""


def score(case: CaseSpec, reply: str) -> Score:
    """Score `reply` for `case` (options already checked by `check_options`)."""
    scorer = case.scorer
    if scorer == "manual":
        return Score(None, "waiting for a judgment")
    if scorer in ("exact", "contains"):
        return _text_score(case, reply)
    if scorer == "regex":
        return _regex_score(case, reply)
    if scorer == "json_valid":
        found, _value, where = extract_json(reply)
        return Score(True, f"valid JSON ({where})") if found else Score(False, "no valid JSON")
    if scorer == "json_schema":
        return _schema_score(case, reply)
    if scorer == "numeric":
        return _numeric_score(case, reply)
    raise ValueError(f"unknown scorer {scorer!r}")


def _short(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _text_score(case: CaseSpec, reply: str) -> Score:
    expected, got = case.expected.strip(), reply.strip()
    if not case.options.get("case_sensitive", False):
        expected, got = expected.casefold(), got.casefold()
    if case.scorer == "exact":
        if got == expected:
            return Score(True, "exact match")
        return Score(False, f"expected {_short(case.expected.strip())}, got {_short(reply)}")
    if expected in got:
        return Score(True, f"contains {_short(case.expected.strip())}")
    return Score(False, f"{_short(case.expected.strip())} not found")


def _regex_score(case: CaseSpec, reply: str) -> Score:
    pattern = compile_pattern(case.expected, case.options.get("flags", ""))
    match = pattern.search(reply)
    if match is None:
        return Score(False, f"no match for /{case.expected}/")
    return Score(True, f"matched {_short(match.group(0))}")


def _schema_score(case: CaseSpec, reply: str) -> Score:
    found, value, _where = extract_json(reply)
    if not found:
        return Score(False, "no valid JSON")
    schema = case.options["schema"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = best_match(validator.iter_errors(value))
    if error is None:
        return Score(True, "matches the schema")
    where = "/".join(str(part) for part in error.absolute_path)
    return Score(False, f"{error.message}" + (f" at {where}" if where else ""))


def _numeric_score(case: CaseSpec, reply: str) -> Score:
    expected = parse_number(case.expected.strip(), whole=True)
    if expected is None:
        raise ValueError(f"numeric case without a number: {case.expected!r}")
    # The last number by default: models work their way to the answer ("12 × 12 = 144"),
    # and echo the question's numbers first. `"pick": "first"` reads the first instead.
    got = parse_number(reply, last=case.options.get("pick", "last") == "last")
    absolute = float(case.options.get("tolerance", 0.0))
    relative = float(case.options.get("relative_tolerance", 0.0))
    allowed = max(absolute, relative * abs(expected))
    plus_minus = f" ± {_fmt(allowed)}" if allowed else ""
    if got is None:
        return Score(False, f"expected {_fmt(expected)}{plus_minus}, no number in the reply")
    passed = abs(got - expected) <= allowed + 1e-12 * max(1.0, abs(expected))
    return Score(passed, f"expected {_fmt(expected)}{plus_minus}, got {_fmt(got)}")


def _fmt(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"
