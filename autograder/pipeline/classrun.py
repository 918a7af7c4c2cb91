"""A class run's output folder, written as it goes: each submission's record committed to the
gradebook (:mod:`autograder.record.gradebook`, one transaction) the moment it is graded, then its
views (report and feedback page, whole, as UTF-8) rewritten from it; the grader's errors in the run
log, and a progress bar or plain progress lines. What a rerun keeps is decided by
:mod:`autograder.record.journal`.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.spec import MODEL_CLASSES

from .. import atomic
from ..record import journal
from ..record.gradebook import Gradebook
from ..reports.charts import class_medians
from ..reports.files import write_report_files
from ..results import Report, Status
from .discover import find_checkpoints, find_predictions
from .run import GraderError, not_graded_report, phase


def inputs_of(student: str, path: Path, checkpoints: Path | None) -> list[Path]:
    """The files a submission's grade depends on: the notebook, its predictions, its weights."""
    files = [Path(path)]
    for kind in MODEL_CLASSES:
        folder = find_predictions(Path(path), kind, student, checkpoints)
        if folder is not None:
            files += [folder / f"{kind}_predictions.npz", folder / f"{kind}_predictions.json"]
    if checkpoints is not None:
        files += [p for p in find_checkpoints(checkpoints, student).values() if p is not None]
    return files


@dataclass
class Plan:
    """What a run grades and what it keeps from the session its gradebook records."""
    todo: list[tuple[str, Path]]
    kept: set[str]  # students whose recorded grading stands
    hashes: dict[str, str]  # student: hash of what is graded
    unreadable: dict[str, Report] = field(default_factory=dict)  # student: not-graded report (hashing failed)


def plan(submissions: list[tuple[str, Path]], book: Gradebook, run: dict, checkpoints: Path | None) -> Plan:
    result = Plan([], set(), {})
    for student, path in submissions:
        try:
            with phase("reading the submission's files"):
                result.hashes[student] = journal.file_hash(inputs_of(student, path, checkpoints))
        except GraderError as err:
            result.unreadable[student] = not_graded_report(student, path, err, run["seed"])
            continue
        if journal.kept(book, run, student, result.hashes[student]):
            result.kept.add(student)
        else:
            result.todo.append((student, path))
    return result


def remove_stale_temporaries(out: Path) -> None:
    """The temporary files a killed writer left in the reports folder's views (never a finished file)."""
    out = Path(out)
    folders = [out, out / "feedback", out / "instructor-only" / "integrity"]
    if (out / "gradescope").is_dir():
        folders += [p for p in (out / "gradescope").iterdir() if p.is_dir()]
    for folder in folders:
        atomic.remove_stale_temporaries(folder)


def write_views(out: Path, reports: list[Report]) -> list[str]:
    """Each student's files rewritten from their record (those unchanged are left alone), the
    feedback pages with the class's median IoU per class; each student is their own failure boundary.
    Returns a line per student whose files could not be written."""
    (Path(out) / "feedback").mkdir(parents=True, exist_ok=True)
    problems = []
    medians = class_medians(reports)
    for report in reports:
        try:
            write_report_files(out, report, medians)
        except (OSError, ValueError) as err:
            problems.append(f"{report.student}: the files could not be written ({err})")
    return problems


class RunLog:
    """The run log (``OUT/run.log``): a line per grader error, with its traceback."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.errors = 0

    def note(self, text: str) -> None:
        with self.lock, open(atomic.fs_path(self.path), "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def error(self, student: str, report: Report) -> None:
        self.errors += 1
        self.note(f"{student}: {report.not_graded or ''}\n{report.traceback}")


class Progress:
    """A progress bar with the time left on a terminal (tqdm), plain lines otherwise."""

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stdout
        self.total, self.done = total, 0
        self.bar = None
        if self.stream.isatty() and total > 1:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="submission", file=self.stream, dynamic_ncols=True)
            except ImportError:
                pass

    def line(self, report: Report) -> None:
        self.done += 1
        if report.not_graded:
            text = f"not graded {report.student}: {report.not_graded} [{self.done}/{self.total}]"
        else:
            text = (f"graded {report.student}: {report.score}/{report.max_score} ({report.seconds} s)"
                    f" [{self.done}/{self.total}]")
        if self.bar is not None:
            self.bar.set_postfix_str(report.student[:20])
            self.bar.update(1)
            if report.not_graded:
                self.bar.write(text)
        else:
            print(text, flush=True, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Writer:
    """Commits each finished submission's record to the gradebook (one transaction), then writes its
    files from it; a failure to write is that submission's (not graded, logged), never the run's.
    ``answers``: the imported written answers' scores the files show (grading never writes them)."""

    def __init__(self, out: Path, book: Gradebook, run: dict, hashes: dict[str, str], log: RunLog,
                 progress: Progress, answers: dict | None = None):
        self.out, self.book, self.run, self.hashes, self.log, self.progress = out, book, run, hashes, log, progress
        self.answers = answers
        self.lock = threading.Lock()
        self.reports: dict[str, Report] = {}
        (out / "feedback").mkdir(parents=True, exist_ok=True)

    def finished(self, report: Report) -> None:
        with self.lock:
            student, sha = report.student, self.hashes.get(report.student, "")
            try:
                with phase("writing its report"):
                    self.book.record(report, sha, self.run["grader"], self.run["session"])
                    report = self.book.report(student, self.answers)
                    write_report_files(self.out, report)
            except GraderError as err:
                report = not_graded_report(student, Path(report.submission), err, report.seed, report.isolation)
                try:
                    self.book.record(report, sha, self.run["grader"], self.run["session"])
                    report = self.book.report(student, self.answers)
                    write_report_files(self.out, report)
                except Exception:  # the log says why; the gradebook says it is not graded, if it could
                    pass
            if report.not_graded:
                self.log.error(student, report)
            self.reports[student] = report
            self.progress.line(report)


def counts_line(reports: list[Report], kept: int, log: Path, errors: int) -> str:
    """The run's last line: how many submissions are in each state (integrity flags included, once
    the class's are computed), and where the log is."""
    not_graded = sum(bool(r.not_graded) for r in reports)
    flagged = sum(bool(r.with_status(Status.FLAGGED)) for r in reports if not r.not_graded)
    graded = len(reports) - not_graded - kept
    parts = [f"{graded} graded", f"{kept} kept from the recorded run", f"{not_graded} not graded",
             f"{flagged} flagged for review"]
    if with_flags := sum(bool(r.integrity) for r in reports):
        parts.append(f"{with_flags} with integrity flags (instructor-only: the class overview)")
    where = f"; grader errors ({errors}) with tracebacks in {log}" if errors else f"; log: {log}"
    return f"{len(reports)} submissions: " + ", ".join(parts) + where
