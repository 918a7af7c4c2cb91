"""The written answers' scores, imported from the CSVs the answers pages save.

    python -m autograder answers --import answers/scores-question1.csv ...    # into the reports

The import checks the CSVs whole before it writes anything, then keeps the scores in one place,
``OUT/manual/scores.json`` (:func:`read_store`, :func:`write_store`), which grading reads and never
writes: a regrade (resume or ``--force``) puts them back into every report it writes
(:func:`attach`). The <student>.json reports, their feedback pages, grades.csv, Gradescope results
(``gradescope/<student>/results.json``) and, with ``--gradebook``, nbgrader's gradebook are views of
it, written with the same writers as the grade command. Importing the same CSV again changes nothing.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from fcnkit.predictions import UnreadableFile, read_bounded

from .. import atomic
from ..reports.csv import write_csv
from ..reports.files import write_report_files
from ..results import ManualScore, Report, read_reports
from .pages import SOURCE, AnswersError, Question, questions_from

CSV_COLUMNS = ["student", "question", "score", "comment"]
STORE = Path("manual") / "scores.json"  # under the reports folder: never a <student>.json
Store = dict[str, dict[str, ManualScore]]  # student: question id: the imported score


def read_scores(paths: list[Path], questions: dict[str, Question], students: set[str],
                anonymous: dict[str, str] | None = None) -> dict[tuple[str, str], tuple[float, str]]:
    """Every CSV's rows, checked whole: ``{(student, question): (score, comment)}``; AnswersError on
    the first line that cannot be used, naming it and the fix."""
    scores = {}
    for path in paths:
        try:
            text = read_bounded(Path(path), 16 * 2**20).decode("utf-8-sig")
        except (UnreadableFile, UnicodeDecodeError) as err:
            raise AnswersError(f"{path}: cannot be read ({err}).") from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        if [h.strip().lower() for h in header] != CSV_COLUMNS:
            missing = [c for c in CSV_COLUMNS if c not in [h.strip().lower() for h in header]]
            raise AnswersError(f"{path} line 1: the columns are {header}; expected {CSV_COLUMNS}"
                               + (f" (missing: {', '.join(missing)})" if missing else "")
                               + ". Download the CSV again from the question's page.")
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise AnswersError(f"{path} line {number}: {len(row)} fields, expected {len(CSV_COLUMNS)}.")
            # the page's script protects cells that start like a formula with a quote: taken off here
            student, question, score, comment = (atomic.untext_cell(cell.strip()) for cell in row)
            student = (anonymous or {}).get(student, student)
            if question not in questions:
                raise AnswersError(f"{path} line {number}: unknown question {question!r}; the questions are "
                                   f"{', '.join(questions)}.")
            if student not in students:
                raise AnswersError(f"{path} line {number}: unknown student {student!r} (no report for them in the "
                                   f"reports folder; grade the submissions first, or fix the name).")
            try:
                value = float(score)
            except ValueError:
                raise AnswersError(f"{path} line {number}: score {score!r} is not a number.") from None
            points = questions[question].points
            if not 0 <= value <= points:
                raise AnswersError(f"{path} line {number}: score {score} is outside 0..{points:g} for {question}.")
            scores[(student, question)] = (value, comment)
    return scores


def merge(reports: list[Report], scores: dict, questions: dict[str, Question]) -> None:
    """Put the scores into the reports (replacing earlier ones of the same student and question)."""
    for report in reports:
        report.manual = report.manual or {}
        for (student, qid), (value, comment) in scores.items():
            if student == report.student:
                q = questions[qid]
                report.manual[qid] = ManualScore(f"Question {q.number} (graded by hand)", value, q.points, comment)


def read_store(reports_dir: Path, reports: list[Report] | None = None) -> Store | None:
    """The written answers' scores imported into ``reports_dir`` (None when none ever were): its
    store, or, in a folder an earlier version wrote (no store yet), those its reports hold.

    Args:
        reports_dir: the reports folder of ``python -m autograder grade``.
        reports: its reports when the caller has read them already (only read without a store).
    """
    path = Path(reports_dir) / STORE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        found = {r.student: dict(r.manual) for r in (read_reports(reports_dir)[0] if reports is None else reports)
                 if r.manual is not None}
        return found or None
    try:
        return {student: {q: ManualScore(**m) for q, m in scores.items()}
                for student, scores in json.loads(text).items()}
    except (ValueError, TypeError, AttributeError) as err:
        raise AnswersError(f"{path} is not the store of imported scores the answers import writes ({err}); restore "
                           f"it from a backup, or remove it and import the scores CSVs again.") from None


def write_store(reports_dir: Path, store: Store) -> None:
    """The imported scores into ``reports_dir``'s store, whole (temp + rename), as UTF-8."""
    path = Path(reports_dir) / STORE
    os.makedirs(atomic.fs_path(path.parent), exist_ok=True)
    data = {student: {q: vars(m) for q, m in sorted(scores.items())} for student, scores in sorted(store.items())}
    atomic.write_text(path, json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def attach(report: Report, store: Store | None) -> None:
    """Put the student's imported scores into ``report`` (none when nothing was imported)."""
    if store is not None:
        report.manual = dict(store.get(report.student, {}))


def _reports(reports_dir: Path) -> tuple[list[Report], list[str]]:
    """The reports the scores go into, and a line for each other JSON file there (not read)."""
    reports, skipped = read_reports(reports_dir)
    if not reports:
        raise AnswersError(f"{reports_dir} holds no <student>.json reports: run python -m autograder grade first "
                           f"(its --out folder), or give --reports.")
    return reports, [f"skipped {line}" for line in skipped]


def _anonymous(csv_paths: list[Path]) -> dict[str, str] | None:
    """The names behind "student 01"..., from the anonymous.json beside the CSVs (write_pages wrote it)."""
    found = next((p.parent / "anonymous.json" for p in csv_paths if (p.parent / "anonymous.json").is_file()), None)
    return json.loads(found.read_text(encoding="utf-8")) if found else None


def _write(reports: list[Report], reports_dir: Path) -> None:
    """The merged reports' files, as the grade command writes them (Gradescope's results included)."""
    (reports_dir / "feedback").mkdir(exist_ok=True)
    for report in reports:
        write_report_files(reports_dir, report)
    write_csv(reports, reports_dir / "grades.csv")


def import_scores(csv_paths: list[Path], reports_dir: Path, source: Path = SOURCE,
                  gradebook: Path | None = None) -> list[str]:
    """Check the CSVs, then write the merged reports, grades.csv, feedback pages, Gradescope results
    and (``gradebook``) nbgrader's gradebook. Nothing is written when a CSV is refused."""
    reports, skipped = _reports(reports_dir)
    questions = {q.id: q for q in questions_from(source)}
    scores = read_scores(csv_paths, questions, {r.student for r in reports}, _anonymous(csv_paths))
    if gradebook is not None and not (gradebook / "gradebook.db").is_file():
        raise AnswersError(f"--gradebook {gradebook}: no gradebook.db there; give the nbgrader course folder.")
    store = read_store(reports_dir, reports) or {}
    for report in reports:
        attach(report, store)
    merge(reports, scores, questions)
    store.update({r.student: r.manual for r in reports})
    done = [*skipped, f"{len(scores)} scores of {len({s for s, _ in scores})} students merged into {reports_dir}"]
    if gradebook is not None:
        from ..frontends.nbgrader import GradebookError, record_manual
        try:
            done += record_manual(gradebook, reports)
        except GradebookError as err:
            raise AnswersError(str(err)) from None
    write_store(reports_dir, store)  # the one place of the scores first; then its views
    _write(reports, reports_dir)
    return done
