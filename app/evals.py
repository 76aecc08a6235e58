"""Eval sets as files: `CaseSpec`, loading JSONL/CSV with line-numbered errors, saving back.

A line of JSONL (or a CSV row with a header of the same names) is one case:
`{"prompt": ..., "expected": ..., "scorer": "contains", "system": ..., <scorer options>}`.
`system_prompt` is accepted for `system`. Options (`case_sensitive`, `flags`, `tolerance`,
`relative_tolerance`, `schema`) are checked against the scorer when the file is read, so a bad
regex or schema is reported with its line number before any model runs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import UserFacingError
from app.scorers import OPTION_NAMES, SCORERS, check_options

CASE_FIELDS = ("prompt", "expected", "scorer", "system", "system_prompt", "options")
CSV_COLUMNS = ("prompt", "expected", "scorer", "system", *OPTION_NAMES)
DEFAULT_SCORER = "contains"


@dataclass(frozen=True, slots=True)
class CaseSpec:
    """One eval case: a prompt, what a good answer is, and how to score it.

    Attributes:
        prompt: the user message sent to the model.
        expected: the expected answer (the pattern for `regex`, the number for `numeric`;
            unused by `json_valid`, `json_schema` and `manual`, where it is a note).
        scorer: one of `SCORERS`.
        system_prompt: a system message sent before the prompt ("" for none).
        options: the scorer's options, already checked (see `app.scorers.check_options`).
    """

    prompt: str
    expected: str = ""
    scorer: str = DEFAULT_SCORER
    system_prompt: str = ""
    options: dict[str, Any] = field(default_factory=dict, hash=False)


def make_case(
    prompt: str,
    expected: str = "",
    scorer: str = DEFAULT_SCORER,
    system_prompt: str = "",
    options: dict[str, Any] | None = None,
) -> CaseSpec:
    """A checked case (what the editor and the loader build).

    Raises:
        UserFacingError: an empty prompt, an unknown scorer, or options the scorer refuses
            (an invalid regex or JSON schema, a negative tolerance, a non-numeric expected).
    """
    if not prompt.strip():
        raise UserFacingError("The prompt is empty; every case needs a prompt.")
    if scorer not in SCORERS:
        raise UserFacingError(f"Unknown scorer {scorer!r}; use one of: {', '.join(SCORERS)}.")
    checked = check_options(scorer, expected, dict(options or {}))
    return CaseSpec(prompt, expected, scorer, system_prompt, checked)


def case_from_mapping(raw: dict[str, Any]) -> CaseSpec:
    """A case from one JSONL object or CSV row (CSV cells are strings; "" means absent).

    Raises:
        UserFacingError: what is wrong with it (without a location; the loader adds one).
    """
    values = {
        k: v for k, v in raw.items() if not (isinstance(v, str) and v == "" and k != "prompt")
    }
    unknown = sorted(set(values) - set(CASE_FIELDS) - set(OPTION_NAMES))
    if unknown:
        known = ", ".join((*CASE_FIELDS[:4], *OPTION_NAMES))
        raise UserFacingError(f"unknown field {', '.join(map(repr, unknown))} (known: {known})")
    prompt = values.get("prompt")
    if not isinstance(prompt, str):
        raise UserFacingError("'prompt' is missing or not text")
    scorer = values.get("scorer", DEFAULT_SCORER)
    if not isinstance(scorer, str):
        raise UserFacingError("'scorer' must be text")
    scorer = scorer.strip().lower()
    expected = values.get("expected", "")
    if isinstance(expected, bool) or not isinstance(expected, str | int | float):
        raise UserFacingError("'expected' must be text or a number")
    system = values.get("system", values.get("system_prompt", ""))
    if not isinstance(system, str):
        raise UserFacingError("'system' must be text")
    options = {k: values[k] for k in OPTION_NAMES if k in values}
    nested = values.get("options", {})
    if not isinstance(nested, dict):
        raise UserFacingError("'options' must be an object")
    return make_case(prompt, str(expected), scorer, system, {**nested, **options})


def load_cases(path: Path) -> list[CaseSpec]:
    """The cases of a `.jsonl` (or `.json` lines) or `.csv` eval set, in file order.

    UTF-8, a byte-order mark allowed; blank lines are skipped.

    Raises:
        UserFacingError: the file cannot be read, has no cases, or a line is bad (the message
            names the file, the line number and what is wrong).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserFacingError(
            f"{path} does not exist; give the path to a .jsonl or .csv eval set."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserFacingError(f"Cannot read the eval set {path}: {exc}. Save it as UTF-8.") from exc
    is_csv = path.suffix.lower() == ".csv"
    cases = _csv_cases(path, text) if is_csv else _jsonl_cases(path, text)
    if not cases:
        raise UserFacingError(f"{path} holds no cases; add one JSON object per line.")
    return cases


def _jsonl_cases(path: Path, text: str) -> list[CaseSpec]:
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            what = f"not valid JSON ({exc.msg} at column {exc.colno})"
            raise _bad_line(path, number, what) from exc
        if not isinstance(raw, dict):
            raise _bad_line(path, number, 'expected a JSON object like {"prompt": ...}')
        try:
            cases.append(case_from_mapping(raw))
        except UserFacingError as exc:
            raise _bad_line(path, number, exc.message) from exc
    return cases


def _csv_cases(path: Path, text: str) -> list[CaseSpec]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    if "prompt" not in header:
        raise _bad_line(path, 1, "the header row needs a 'prompt' column")
    reader.fieldnames = header
    cases = []
    for row in reader:
        number = reader.line_num
        if None in row:
            raise _bad_line(path, number, "more cells than header columns")
        cells = {k: (v if v is not None else "") for k, v in row.items()}
        if not any(cell.strip() for cell in cells.values()):
            continue
        try:
            cases.append(case_from_mapping(cells))
        except UserFacingError as exc:
            raise _bad_line(path, number, exc.message) from exc
    return cases


def _bad_line(path: Path, number: int, what: str) -> UserFacingError:
    return UserFacingError(f"{path}, line {number}: {what}. Fix the line and load the set again.")


def case_to_mapping(case: CaseSpec) -> dict[str, Any]:
    """The JSONL form of a case (options as top-level fields; empty values left out)."""
    out: dict[str, Any] = {"prompt": case.prompt}
    if case.expected:
        out["expected"] = case.expected
    out["scorer"] = case.scorer
    if case.system_prompt:
        out["system"] = case.system_prompt
    out.update(case.options)
    return out


def save_cases(path: Path, cases: Sequence[CaseSpec]) -> None:
    """Write cases as JSONL, or as CSV when `path` ends in `.csv` (`load_cases` reads both).

    Raises:
        UserFacingError: the file cannot be written (names the file).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            with path.open("w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                for case in cases:
                    writer.writerow(_csv_row(case))
        else:
            lines = [json.dumps(case_to_mapping(c), ensure_ascii=False) for c in cases]
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise UserFacingError(
            f"Cannot write {path}: {exc.strerror}. Choose another place."
        ) from exc


def _csv_row(case: CaseSpec) -> dict[str, str]:
    row = {"prompt": case.prompt, "expected": case.expected, "scorer": case.scorer}
    row["system"] = case.system_prompt
    for name in OPTION_NAMES:
        value = case.options.get(name)
        if value is None:
            row[name] = ""
        elif isinstance(value, dict | list):
            row[name] = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, bool):
            row[name] = "true" if value else "false"
        else:
            row[name] = str(value)
    return row
