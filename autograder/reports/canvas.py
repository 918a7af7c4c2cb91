"""Grades into an LMS: the CSV that Canvas's gradebook import takes (Grades > Import), made from a
reports folder and the roster Canvas exports (Grades > Export).

    python -m autograder export canvas grading-reports --roster canvas-export.csv --out canvas-import.csv

The file has the roster's identifying columns (Student, ID, SIS User ID, SIS Login ID, Section), its
"Points Possible" row, and one column for the assignment (an existing one, "Name (12345)", or a new
one by name). Students are matched on SIS Login ID (``--match`` names another roster column); graded
students missing from the roster and roster students without a report are listed on stderr and in
a file beside the output, never dropped silently. The score is the total, written answers included
once they are imported (``python -m autograder answers --import``); a class where some students have
imported answers and others lack some is refused, naming them, unless the export is told to send the
automatic score only or to count the missing answers as 0.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import text_cell, write_text
from ..results import Report

IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "Points Possible"
DEFAULT_ASSIGNMENT = "FCN segmentation"


class ExportError(ValueError):
    """A roster or reports folder that cannot be exported; the message names the file and the fix."""


@dataclass
class Export:
    """What an export wrote, and whom it could not match."""
    column: str  # the assignment's column
    points_possible: float
    rows: int
    not_in_roster: list[str] = field(default_factory=list)  # graded students the roster lacks
    without_report: list[str] = field(default_factory=list)  # roster students with no report
    notes: list[str] = field(default_factory=list)


def read_roster(path: Path) -> tuple[list[str], list[dict], dict | None]:
    """(header, students, the Points Possible row or None) of a Canvas gradebook export."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # Canvas's export may begin with a byte-order mark
    except (OSError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: cannot be read as UTF-8 text ({err}); give the CSV of Canvas's Grades > "
                          f"Export.") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    header = list(csv.reader(io.StringIO(text)))[0] if text.strip() else []
    missing = [c for c in IDENTITY if c not in header]
    if missing:
        raise ExportError(f"{path}: no {', '.join(repr(c) for c in missing)} column; this is not a Canvas gradebook "
                          f"export (Grades > Export > Export Entire Gradebook).")
    points = next((r for r in rows if (r["Student"] or "").strip() == POINTS_POSSIBLE), None)
    students = [r for r in rows if (r["Student"] or "").strip() != POINTS_POSSIBLE and any((r[c] or "").strip()
                                                                                            for c in IDENTITY)]
    return header, students, points


def class_reports(folder: Path) -> tuple[list[Report], list[str]]:
    """The reports of ``folder``'s gradebook (``OUT/gradebook.sqlite``; an earlier version's JSON
    reports read into it first) and notes; ExportError when it holds nobody."""
    from ..record import books
    from ..record.gradebook import GradebookError
    if not Path(folder).is_dir():
        raise ExportError(f"{folder}: no such reports folder; run python -m autograder grade ... --out {folder} first.")
    try:
        book = books.open_class(Path(folder))
        try:
            reports = book.reports()
        finally:
            book.close()
    except GradebookError as err:
        raise ExportError(str(err)) from None
    if not reports:
        raise ExportError(f"{folder}: no graded submissions; run python -m autograder grade ... --out {folder} "
                          f"first{' (and summarize, to join its shards)' if books.shard_books(folder) else ''}.")
    return reports, []


def assignment_column(header: list[str], name: str) -> str:
    """The roster's column for the assignment: ``name`` itself, or the one column ``name (id)``;
    else ``name``, which Canvas imports as a new assignment."""
    if name in header:
        return name
    matches = [c for c in header if re.fullmatch(re.escape(name) + r" \(\d+\)", c)]
    if len(matches) > 1:
        raise ExportError(f"the roster has several columns for {name!r} ({', '.join(matches)}); give one with "
                          f"--assignment.")
    return matches[0] if matches else name


def points_possible(reports: list[Report], automatic_only: bool = False) -> float:
    manual = max((sum(m.max_score for m in (r.manual or {}).values()) for r in reports), default=0)
    return float(max(r.max_score for r in reports) + (0 if automatic_only else manual))


def missing_answers(reports: list[Report]) -> dict[str, list[str]]:
    """The students without an imported score for a written question someone else has one for: the
    questions each lacks."""
    questions = sorted({q for r in reports for q in (r.manual or {})})
    lacking = {r.student: [q for q in questions if q not in (r.manual or {})] for r in reports}
    return {student: missing for student, missing in sorted(lacking.items()) if missing}


def written_answers_notes(reports: list[Report], lacking: dict[str, list[str]], possible: float,
                          automatic_only: bool, missing_as_zero: bool) -> list[str]:
    """What the exported column holds, as notes; ExportError for partial totals (``lacking``: see
    :func:`missing_answers`) unless ``automatic_only`` or ``missing_as_zero`` says what to send."""
    if lacking and not (automatic_only or missing_as_zero):
        raise ExportError(f"{len(lacking)} students have no imported score for written answers others have: "
                          + "; ".join(f"{s} ({', '.join(q)})" for s, q in lacking.items())
                          + ". Import their scores (python -m autograder answers --import ...), or export with "
                            "--automatic-only (the automatic score alone) or --missing-answers-zero (count them "
                            "as 0).")
    if automatic_only:
        return [f"--automatic-only: the column holds the automatic score only, out of {possible:g} points"]
    if not any(r.manual for r in reports):
        return ["the written answers are not imported yet: the column holds the automatic score only "
                "(python -m autograder answers --import ...)"]
    if lacking:
        return [f"--missing-answers-zero: {len(lacking)} students' missing written answers count as 0: "
                + ", ".join(lacking)]
    return []


def export_canvas(reports_dir: Path, roster: Path, out: Path, match: str = "SIS Login ID",
                  assignment: str = DEFAULT_ASSIGNMENT, automatic_only: bool = False,
                  missing_as_zero: bool = False) -> Export:
    """Write Canvas's gradebook import CSV (UTF-8, whole: temp + rename) and a list of whom it
    could not match (``out`` with ``-unmatched.csv``).

    Args:
        reports_dir: the reports folder of ``python -m autograder grade`` (``<student>.json``).
        roster: the CSV of Canvas's Grades > Export.
        out: the CSV to write, for Canvas's Grades > Import.
        match: the roster column holding the grader's student ids (nbgrader's are usually logins).
        assignment: the assignment's column, ``Name (12345)`` as in the roster, or a new name.
        automatic_only: export the automatic score alone (out of the automatic points).
        missing_as_zero: count a written answer without an imported score as 0; without this (or
            ``automatic_only``), a class where some exported students lack scores others have is
            refused (ExportError naming them), rather than sent as partial totals.
    """
    header, students, points_row = read_roster(roster)
    if match not in header:
        raise ExportError(f"{roster}: no {match!r} column to match students on; choose one of "
                          f"{', '.join(header[:8])} with --match.")
    read, skipped = class_reports(reports_dir)
    reports = {r.student: r for r in read}
    column = assignment_column(header, assignment)
    possible = points_possible(list(reports.values()), automatic_only)
    by_key: dict[str, dict] = {}
    for row in students:
        key = (row[match] or "").strip()
        if key:
            by_key.setdefault(key.casefold(), row)
    found = {s.casefold(): s for s in reports}
    lacking = missing_answers([reports[s] for s in reports if s.casefold() in by_key])
    result = Export(column, possible, 0, notes=skipped)
    result.not_in_roster = sorted(s for s in reports if s.casefold() not in by_key)
    result.without_report = sorted((row["Student"] or row[match] or "?").strip() for row in students
                                   if (row[match] or "").strip().casefold() not in found)
    result.notes += written_answers_notes(list(reports.values()), lacking, possible, automatic_only, missing_as_zero)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([*IDENTITY, column])
    writer.writerow([text_cell((points_row or {}).get(c) or "") if c != "Student" else POINTS_POSSIBLE
                     for c in IDENTITY] + [f"{possible:g}"])
    for row in students:
        student = found.get((row[match] or "").strip().casefold())
        if student is None:
            continue
        score = reports[student].score if automatic_only else reports[student].total
        writer.writerow([text_cell((row[c] or "").strip()) for c in IDENTITY] + [f"{float(score):g}"])
        result.rows += 1
    write_text(Path(out), buffer.getvalue())
    unmatched = io.StringIO()
    listing = csv.writer(unmatched, lineterminator="\n")
    listing.writerow(["problem", "student"])
    listing.writerows(("graded, not in the roster", text_cell(s)) for s in result.not_in_roster)
    listing.writerows(("in the roster, no report", text_cell(s)) for s in result.without_report)
    write_text(unmatched_path(out), unmatched.getvalue())
    return result


def unmatched_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "-unmatched.csv")
