"""The written answers' scores, imported from the CSVs the answers pages save.

    python -m autograder answers --import answers/scores-question1.csv ...    # into the reports

The import checks the CSVs whole before it writes anything, then keeps the scores in one place,
the class's gradebook (``OUT/gradebook.sqlite``, table ``manual``), which grading reads and never
writes: a regrade (resume or ``--force``) shows them in every file it writes. The <student>.json
reports, their feedback pages, grades.csv, the overview, Gradescope results
(``gradescope/<student>/results.json``) and, with ``--gradebook``, nbgrader's gradebook are views of
it, written with the same writers as the grade command. Importing the same CSV again changes nothing.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from fcnkit.predictions import UnreadableFile, read_bounded

from .. import atomic
from ..questions import SOURCE, AnswersError, Question, questions_from
from ..pipeline import classrun
from ..record import books
from ..record.gradebook import GradebookError
from ..record.journal import Lock, RunLocked
from ..reports.csv import write_csv
from ..reports.nbgrader import NbgraderError, record_manual
from ..reports.overview import write_overview
from ..results import ManualScore, Report

CSV_COLUMNS = ["student", "question", "score", "comment"]


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


def _anonymous(csv_paths: list[Path]) -> dict[str, str] | None:
    """The names behind "student 01"..., from the anonymous.json beside the CSVs (write_pages wrote it)."""
    found = next((p.parent / "anonymous.json" for p in csv_paths if (p.parent / "anonymous.json").is_file()), None)
    return json.loads(found.read_text(encoding="utf-8")) if found else None


def _class_book(reports_dir: Path):
    """The class's gradebook (an earlier version's folder read in first); AnswersError when it
    holds nobody yet."""
    try:
        book = books.open_class(reports_dir)
    except GradebookError as err:
        raise AnswersError(str(err)) from None
    if not book.students():
        book.close()
        fix = (f"join the shards first: python -m autograder summarize {reports_dir}" if books.shard_books(reports_dir)
               else "run python -m autograder grade first (its --out folder), or give --reports")
        raise AnswersError(f"{reports_dir} holds no graded submissions: {fix}.")
    return book


def rewrite_class_files(book, reports_dir: Path) -> list[Report]:
    """Every file of the class rewritten from its gradebook: the students' reports, feedback pages
    and Gradescope results, grades.csv and the overview (the integrity flags as recorded)."""
    reports = book.reports()
    problems = classrun.write_views(reports_dir, reports)
    if problems:
        raise AnswersError("; ".join(problems))
    write_csv(reports, reports_dir / "grades.csv")
    write_overview(reports_dir, reports, book.facts())
    return reports


def import_scores(csv_paths: list[Path], reports_dir: Path, source: Path = SOURCE,
                  gradebook: Path | None = None) -> list[str]:
    """Check the CSVs, put the scores into the class's gradebook (one transaction, under the run
    lock), then rewrite its views: the reports, grades.csv, feedback pages, Gradescope results,
    the overview and (``gradebook``) nbgrader's gradebook. Nothing is written when a CSV is refused."""
    reports_dir = Path(reports_dir)
    if gradebook is not None and not (gradebook / "gradebook.db").is_file():
        raise AnswersError(f"--gradebook {gradebook}: no gradebook.db there; give the nbgrader course folder.")
    try:
        lock = Lock(reports_dir / "run.lock")
    except (RunLocked, FileNotFoundError) as err:
        raise AnswersError(str(err)) from None
    try:
        from ..pipeline.classrun import remove_stale_temporaries
        remove_stale_temporaries(reports_dir)  # a killed import's, never a finished file
        book = _class_book(reports_dir)
        try:
            reports = book.reports()
            questions = {q.id: q for q in questions_from(source)}
            scores = read_scores(csv_paths, questions, {r.student for r in reports}, _anonymous(csv_paths))
            merge(reports, scores, questions)
            book.import_answers({r.student: {q: r.manual[q] for q in r.manual if (r.student, q) in scores}
                                 for r in reports})  # the one place of the scores first; then its views
            reports = rewrite_class_files(book, reports_dir)
        finally:
            book.close()
    finally:
        lock.release()
    done = [f"{len(scores)} scores of {len({s for s, _ in scores})} students merged into {reports_dir}"]
    if gradebook is not None:
        try:
            done += record_manual(gradebook, reports)
        except NbgraderError as err:
            raise AnswersError(str(err)) from None
    return done
