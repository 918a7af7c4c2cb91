"""The grader's scores in an nbgrader course: in its gradebook (formgrader shows them beside the
hand-graded answers) and in each autograded notebook (``nbgrader generate_feedback`` shows them).

nbgrader's own autograde would run the student's notebook in the instructor's kernel; here it only
files the submissions (``--Execute.enabled=False``: it copies them to ``autograded/``, restores the
locked cells and records them in the gradebook, keeping the student's outputs for the person who
grades the written answers). Then every test cell whose ``grade_id`` is a rubric item gets the
grader's verdict as its output and its score in the gradebook: items the run did not grade, or
flagged for review, are left for manual grading.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..results import CheckResult, Report, Status


class NbgraderError(RuntimeError):
    """The course or the submissions are not what nbgrader needs; the message says what to fix."""


def _owner(report: Report) -> tuple[str, str]:
    """(assignment, student) of a report whose submission is in nbgrader's submitted/<student>/<assignment>/."""
    parts = Path(report.submission).parts
    if "submitted" not in parts[:-3]:
        raise NbgraderError(f"{report.submission} is not in an nbgrader course's submitted/<student>/<assignment>/")
    at = len(parts) - 1 - parts[::-1].index("submitted")
    return parts[at + 2], parts[at + 1]


def _where(report: Report) -> tuple[str, str]:
    """(assignment, notebook name) of a report whose submission is nbgrader's submitted/<student>/<assignment>/."""
    assignment, student = _owner(report)
    if student != report.student:
        raise NbgraderError(f"{report.submission} is not in an nbgrader course's submitted/<student>/<assignment>/")
    return assignment, Path(report.submission).stem


def run_nbgrader(course: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` for the course folder ``course`` (``kwargs`` go to subprocess.run).
    nbgrader runs console scripts of its own (alembic): the interpreter's folder goes first on PATH,
    so that this works from a virtual environment that is not activated."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
                           "--log-level=WARN"], cwd=course, env=env, **kwargs)


def nbgrader_cause(output: str) -> str:
    """Why nbgrader failed, from its output: the exception line (``...Error: ...``) when there is one,
    else the warning that names the problem (not the checksum changes every edited notebook has)
    followed by the first line of its error ("exists multiple times!", then nbgrader's misleading
    "use an old version of the nbgrader metadata format"), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    exceptions = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b", line)]
    if exceptions:
        cause = exceptions[-1]
    else:
        strip = lambda line: re.sub(r"^\[\w+ \| \w+\]\s*", "", line)  # noqa: E731  "[AutogradeApp | ERROR] "
        warnings = [strip(line) for line in lines if "| WARNING]" in line and "'checksum'" not in line]
        errors = [strip(line) for line in lines if "| ERROR]" in line]
        cause = "; ".join([*warnings[:3], *(f"nbgrader then stopped: {e}" for e in errors[:1])]) \
            or (lines or ["no output"])[-1]
    return cause if len(cause) <= 600 else cause[:597] + "..."


def autograde_without_running(course: Path, assignment: str, student: str | None = None) -> None:
    """nbgrader autograde (of one student, or of everyone), minus the execution of student code."""
    result = run_nbgrader(course, "autograde", assignment, *([f"--student={student}"] if student else []), "--force",
                          "--Execute.enabled=False", "--ClearOutput.enabled=False", capture_output=True, text=True)
    if result.returncode != 0:
        raise NbgraderError(f"nbgrader autograde failed: {nbgrader_cause(result.stdout + chr(10) + result.stderr)}")


MARKS = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.NOT_GRADED: "PENDING", Status.FLAGGED: "UNDER REVIEW"}


def verdict_output(check: CheckResult):
    import nbformat
    points = "-" if check.status is Status.NOT_GRADED else check.score
    text = f"{MARKS[check.status]} {check.title}: {points} / {check.max_score} points (python -m autograder grade)\n" \
           f"{check.message}\n"
    return nbformat.v4.new_output("stream", name="stdout" if check.status is Status.PASSED else "stderr", text=text)


@dataclass
class Filed:
    """What :func:`record` did: a line per student filed, and one per student it could not file
    (named, with what to do); those have no automatic score in the gradebook at all."""
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _clear_scores(gb, notebook: str, assignment: str, student: str) -> None:
    """No automatic score for a student whose notebook could not be filed: nbgrader's own, computed
    from the outputs the student saved, would pass every test cell without an error in its output."""
    from nbgrader.api import MissingEntry
    try:
        filed = gb.find_submission_notebook(notebook, assignment, student)
    except MissingEntry:
        return
    for grade in filed.grades:
        if grade.auto_score is not None:
            grade.auto_score = None
            grade.needs_manual_grade = True
    gb.db.commit()


def _mangled(course: Path, assignment: str, student: str, reports: list[Report], notebooks: list[str]) -> str:
    """Why a student's submission cannot be filed as it is ("" when it can), and what to do."""
    folder = course / "submitted" / student / assignment
    expected = " and ".join(f"{n}.ipynb" for n in notebooks)
    if len(reports) > 1:
        names = ", ".join(sorted(Path(r.submission).name for r in reports))
        return (f"two submissions in submitted/{student}/{assignment}/ ({names}): keep only {expected} "
                f"there (the one to grade), then run the grade command again")
    name = Path(reports[0].submission).stem
    if name not in notebooks:
        return (f"the notebook is {name}{Path(reports[0].submission).suffix}, nbgrader expects {expected}: rename "
                f"it in {folder} and run the grade command again")
    return ""


def _by_student(reports: list[Report], filed: Filed) -> dict[tuple[str, str], list[Report]]:
    """The reports by (assignment, student); one not in nbgrader's layout is a problem of ``filed``."""
    by_student: dict[tuple[str, str], list[Report]] = {}
    for report in reports:
        try:
            by_student.setdefault(_owner(report), []).append(report)
        except NbgraderError as err:
            filed.problems.append(f"{report.student}: not filed in nbgrader's gradebook: {err}")
    return by_student


def _why_not_filed(course: Path, assignment: str, student: str, group: list[Report], notebooks: list[str],
                   everyone_filed: set[str]) -> str:
    """Why the student's submission is not filed ("" when it is): autograde runs for them alone
    when the class's run could not file the assignment."""
    why = _mangled(course, assignment, student, group, notebooks)
    if not why and assignment not in everyone_filed:
        try:
            autograde_without_running(course, assignment, student)
        except NbgraderError as err:
            why = f"{err}; fix the notebook in submitted/{student}/{assignment}/ (or ask the student for a " \
                  f"fresh copy of the assignment with their answers pasted in) and run the grade command again"
    return why


def _file_scores(gb, course: Path, assignment: str, student: str, report: Report) -> None:
    """The verdicts into the autograded notebook's test cells and the scores into the gradebook:
    items not graded or flagged are left for a person (``needs_manual_grade``)."""
    import nbformat
    from nbgrader.api import MissingEntry
    notebook = Path(report.submission).stem
    path = course / "autograded" / student / assignment / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    checks = {c.name: c for c in report.checks}
    for cell in nb.cells:
        check = checks.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if check is not None and cell.cell_type == "code":
            cell.outputs = [verdict_output(check)]
    nbformat.write(nb, path)
    for name, check in checks.items():
        try:
            grade = gb.find_grade(name, notebook, assignment, student)
        except MissingEntry:
            continue  # the notebook has no cell for this item
        graded = check.status in (Status.PASSED, Status.FAILED)
        grade.auto_score = float(check.score) if graded else None
        grade.needs_manual_grade = not graded
    gb.db.commit()


def record(course: Path, reports: list[Report]) -> Filed:
    """Put the scores of ``reports`` (from ``python -m autograder grade COURSE/submitted``) into the
    course's gradebook and autograded notebooks, student by student: one whose submission nbgrader
    cannot file (renamed, two notebooks, a grade_id duplicated or deleted) is named with the fix and
    left without automatic scores; everyone else's are filed."""
    from nbgrader.api import Gradebook, MissingEntry
    course = Path(course).resolve()
    if not (course / "gradebook.db").is_file():
        raise NbgraderError(f"{course} has no gradebook.db: give the nbgrader course folder (the one holding "
                             f"nbgrader_config.py, source/ and submitted/).")
    filed = Filed()
    by_student = _by_student(reports, filed)
    everyone_filed = set()
    for assignment in sorted({a for a, _ in by_student}):
        try:  # one nbgrader run for the whole class when it can (fast); student by student when it fails
            autograde_without_running(course, assignment)
            everyone_filed.add(assignment)
        except NbgraderError:
            pass
    for (assignment, student), group in sorted(by_student.items()):
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            try:
                notebooks = [n.name for n in gb.find_assignment(assignment).notebooks]
            except MissingEntry:
                filed.problems.append(f"{student}: not filed: the gradebook has no assignment {assignment!r} "
                                      f"(python notebooks/build.py --release --course {course} records it, as "
                                      f"nbgrader generate_assignment {assignment} does)")
                continue
        why = _why_not_filed(course, assignment, student, group, notebooks, everyone_filed)
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            if why:
                for notebook in notebooks:
                    _clear_scores(gb, notebook, assignment, student)
                filed.problems.append(f"{student}: not filed in nbgrader's gradebook ({assignment}), no automatic "
                                      f"score there: {why}")
                continue
            _file_scores(gb, course, assignment, student, group[0])
            filed.done.append(f"{student}: {group[0].score} / {group[0].graded_max_score} into "
                              f"nbgrader's gradebook ({assignment})")
    return filed


def record_manual(course: Path, reports: list[Report]) -> list[str]:
    """The written answers' scores and comments (python -m autograder answers --import) into the
    gradebook, as a person's grades: formgrader shows them as graded by hand."""
    from nbgrader.api import Gradebook, MissingEntry
    course = Path(course).resolve()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        found = []  # every cell first: a missing one writes nothing
        for report in reports:
            assignment, notebook = _where(report)
            for qid, manual in (report.manual or {}).items():
                try:
                    found.append((gb.find_grade(qid, notebook, assignment, report.student),
                                  gb.find_comment(qid, notebook, assignment, report.student), manual))
                except MissingEntry:
                    raise NbgraderError(f"{report.student} has no {qid} in nbgrader's gradebook for {assignment}: "
                                         f"run python -m autograder grade ... --gradebook {course} first") from None
        for grade, comment, manual in found:
            grade.manual_score = manual.score
            grade.needs_manual_grade = False
            comment.manual_comment = manual.comment
        gb.db.commit()
    return [f"{r.student}: {len(r.manual)} written answers into nbgrader's gradebook" for r in reports if r.manual]
