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
import subprocess
import sys
from pathlib import Path

from .rubric import FLAGGED, NOT_GRADED


class GradebookError(RuntimeError):
    """The course or the submissions are not what nbgrader needs; the message says what to fix."""


def _where(report: dict) -> tuple[str, str]:
    """(assignment, notebook name) of a report whose submission is nbgrader's submitted/<student>/<assignment>/."""
    parts = Path(report["submission"]).parts
    if "submitted" not in parts[:-3] or parts[parts.index("submitted") + 1] != report["student"]:
        raise GradebookError(f"{report['submission']} is not in an nbgrader course's submitted/<student>/<assignment>/")
    return parts[parts.index("submitted") + 2], Path(report["submission"]).stem


def run_nbgrader(course: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` for the course folder ``course`` (``kwargs`` go to subprocess.run).
    nbgrader runs console scripts of its own (alembic): the interpreter's folder goes first on PATH,
    so that this works from a virtual environment that is not activated."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}",
                           "--log-level=WARN"], cwd=course, env=env, **kwargs)


def autograde_without_running(course: Path, assignment: str) -> None:
    """nbgrader autograde, minus the execution of student code."""
    result = run_nbgrader(course, "autograde", assignment, "--force", "--Execute.enabled=False",
                          "--ClearOutput.enabled=False", capture_output=True, text=True)
    if result.returncode != 0:
        raise GradebookError(f"nbgrader autograde {assignment} failed in {course}:\n{result.stderr.strip()[-2000:]}")


def verdict_output(check: dict):
    import nbformat
    mark = {"passed": "PASS", "failed": "FAIL", NOT_GRADED: "PENDING", FLAGGED: "UNDER REVIEW"}[check["status"]]
    points = "-" if check["status"] == NOT_GRADED else check["score"]
    text = f"{mark} {check['title']}: {points} / {check['max_score']} points (python -m autograder grade)\n" \
           f"{check['message']}\n"
    return nbformat.v4.new_output("stream", name="stdout" if check["status"] == "passed" else "stderr", text=text)


def record(course: Path, reports: list[dict]) -> list[str]:
    """Put the scores of ``reports`` (from ``python -m autograder grade COURSE/submitted``) into the
    course's gradebook and autograded notebooks; returns what it did, a line per student."""
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry
    course = Path(course).resolve()
    if not (course / "gradebook.db").is_file():
        raise GradebookError(f"{course} has no gradebook.db: give the nbgrader course folder (the one holding "
                             f"nbgrader_config.py, source/ and submitted/).")
    by_assignment: dict[str, list[dict]] = {}
    for report in reports:
        by_assignment.setdefault(_where(report)[0], []).append(report)
    done = []
    for assignment, group in by_assignment.items():
        autograde_without_running(course, assignment)
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            for report in group:
                _, notebook = _where(report)
                path = course / "autograded" / report["student"] / assignment / f"{notebook}.ipynb"
                nb = nbformat.read(path, as_version=4)
                checks = {c["name"]: c for c in report["checks"]}
                for cell in nb.cells:
                    check = checks.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
                    if check is not None and cell.cell_type == "code":
                        cell.outputs = [verdict_output(check)]
                nbformat.write(nb, path)
                for name, check in checks.items():
                    try:
                        grade = gb.find_grade(name, notebook, assignment, report["student"])
                    except MissingEntry:
                        continue  # the notebook has no cell for this item
                    graded = check["status"] in ("passed", "failed")
                    grade.auto_score = float(check["score"]) if graded else None
                    grade.needs_manual_grade = not graded
                gb.db.commit()
                done.append(f"{report['student']}: {report['score']} / {report.get('graded_max_score', 0)} into "
                            f"nbgrader's gradebook ({assignment})")
    return done


def record_manual(course: Path, reports: list[dict]) -> list[str]:
    """The written answers' scores and comments (python -m autograder answers --import) into the
    gradebook, as a person's grades: formgrader shows them as graded by hand."""
    from nbgrader.api import Gradebook, MissingEntry
    course = Path(course).resolve()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        found = []  # every cell first: a missing one writes nothing
        for report in reports:
            assignment, notebook = _where(report)
            for qid, manual in report.get("manual", {}).items():
                try:
                    found.append((gb.find_grade(qid, notebook, assignment, report["student"]),
                                  gb.find_comment(qid, notebook, assignment, report["student"]), manual))
                except MissingEntry:
                    raise GradebookError(f"{report['student']} has no {qid} in nbgrader's gradebook for {assignment}: "
                                         f"run python -m autograder grade ... --gradebook {course} first") from None
        for grade, comment, manual in found:
            grade.manual_score = manual["score"]
            grade.needs_manual_grade = False
            comment.manual_comment = manual["comment"]
        gb.db.commit()
    return [f"{r['student']}: {len(r['manual'])} written answers into nbgrader's gradebook" for r in reports
            if r.get("manual")]
