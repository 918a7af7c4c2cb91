"""A class run's output folder, written as it goes: each submission's report and feedback page the
moment it is graded (whole, as UTF-8), its state in the journal, the grader's errors in the run log,
and a progress bar or plain progress lines. What a rerun keeps is decided by :mod:`autograder.pipeline.journal`.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fcnkit.spec import MODEL_CLASSES

from .. import atomic
from ..judging.miou import find_predictions
from ..reports.files import write_json, write_report_files
from ..results import Report, ReportError, Status, read_report, report_path
from . import journal
from .discover import find_checkpoints
from .run import GraderError, not_graded, phase


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


def load_report(out: Path, student: str) -> Report | None:
    """A report written by an earlier run, or None when it is missing or not whole."""
    try:
        report = read_report(report_path(out, student))
    except ReportError:
        return None
    return report if report.student == student else None


@dataclass
class Plan:
    """What a run grades and what it keeps from the run its journal records."""
    todo: list[tuple[str, Path]]
    kept: dict[str, Report]  # student: report
    hashes: dict[str, str]  # student: hash of what is graded
    unreadable: dict[str, Report] = field(default_factory=dict)  # student: not-graded report (hashing failed)


def plan(submissions: list[tuple[str, Path]], record: journal.Journal, out: Path, checkpoints: Path | None) -> Plan:
    result = Plan([], {}, {})
    for student, path in submissions:
        try:
            with phase("reading the submission's files"):
                result.hashes[student] = journal.file_hash(inputs_of(student, path, checkpoints))
        except GraderError as err:
            result.unreadable[student] = not_graded(student, path, err, record.seed)
            continue
        report = load_report(out, student) if record.kept(student, result.hashes[student]) else None
        if report is not None:
            result.kept[student] = report
        else:
            result.todo.append((student, path))
    return result


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
    """Writes each finished submission's files and journal entry; a failure to write is that
    submission's (not graded, logged), never the run's. ``attach`` puts what grading does not make
    into each report before it is written (the written answers' imported scores)."""

    def __init__(self, out: Path, record: journal.Journal, hashes: dict[str, str], log: RunLog, progress: Progress,
                 attach=lambda report: None):
        self.out, self.journal, self.hashes, self.log, self.progress = out, record, hashes, log, progress
        self.attach = attach
        self.lock = threading.Lock()
        self.reports: dict[str, Report] = {}
        (out / "feedback").mkdir(parents=True, exist_ok=True)

    def finished(self, report: Report) -> None:
        with self.lock:
            student = report.student
            try:
                with phase("writing its report"):
                    self.attach(report)
                    write_report_files(self.out, report)
            except GraderError as err:
                report = not_graded(student, Path(report.submission), err, report.seed, report.isolation)
                try:
                    self.attach(report)
                    write_json([report], report_path(self.out, student))
                except Exception:  # the log says why; the journal says it is not graded
                    pass
            if report.not_graded:
                self.log.error(student, report)
            state = journal.NOT_GRADED if report.not_graded else journal.GRADED
            self.journal.set(student, journal.Entry(report.submission, self.hashes.get(student, ""), state,
                                                    report.not_graded or ""))
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
