"""Gradescope's results.json: one report in the fields of Gradescope's specification (the autograder
bundle that writes it on Gradescope, and ``gradescope-run``, are :mod:`autograder.frontends.gradescope`)."""
from __future__ import annotations

from ..results import Report, Status
from ..rubric import ITEMS
from .html import isolation_line


def visibility(name: str) -> str:
    """What students see of an item before grades are published: the checks the notebook hides
    (its hidden tests: comparisons with the reference) show after publication only."""
    return "after_published" if ITEMS[name].hidden else "visible"


def results(report: Report, seconds: float) -> dict:
    """Gradescope's results.json for one report (its specification's fields only)."""
    tests = []
    for c in report.checks:
        test = {"name": c.title, "number": str(len(tests) + 1), "score": c.score, "max_score": c.max_score,
                "output": c.message, "output_format": "text", "visibility": visibility(c.name)}
        if c.graded:
            test["status"] = "passed" if c.status is Status.PASSED else "failed"
        tests.append(test)
    for m in (report.manual or {}).values():  # written answers, once imported
        tests.append({"name": m.title, "number": str(len(tests) + 1), "score": m.score, "max_score": m.max_score,
                      "output": m.comment, "output_format": "text", "visibility": "visible"})
    pending = [c.name for c in report.with_status(Status.NOT_GRADED)]
    output = [*report.notes, isolation_line(report)]
    if pending:
        output.append(f"Not graded yet: {', '.join(pending)} (the written answers are graded by hand).")
    return {"score": report.total, "execution_time": round(seconds), "output": "\n".join(output),
            "output_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def failure(message: str, seconds: float) -> dict:
    """results.json when the submission could not be graded at all (so Gradescope shows why)."""
    return {"score": 0, "execution_time": round(seconds), "output": message, "output_format": "text",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}
