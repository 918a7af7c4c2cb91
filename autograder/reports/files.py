"""A submission's files in the reports folder: ``<student>.json`` and ``feedback/<student>.html``,
views of the gradebook (:mod:`autograder.record.gradebook`), each written whole (temp file +
rename) as UTF-8 when it changed, named by the student's safe file stem
(:func:`autograder.results.file_stem`), never by the id itself."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import atomic
from ..results import Report, dumps, file_stem, report_path
from .gradescope import results
from .html import feedback_html


def write_json(reports: list[Report], path: Path) -> None:
    """One report as a JSON object, several as an array."""
    atomic.write_text(path, dumps(reports[0] if len(reports) == 1 else reports))


def feedback_path(out: Path, student: str) -> Path:
    """Where ``student``'s feedback page is in the reports folder ``out``."""
    return Path(out) / "feedback" / f"{file_stem(student)}.html"


def gradescope_path(out: Path, student: str) -> Path:
    """Where ``student``'s Gradescope results are in the reports folder ``out``."""
    return Path(out) / "gradescope" / file_stem(student) / "results.json"


def write_report_files(out: Path, report: Report, class_median: dict[str, list] | None = None) -> None:
    """``out/<student>.json``, ``out/feedback/<student>.html`` (the folder must exist; ``class_median``:
    the class's median IoU per class, marked on its bars) and, once written answers are imported
    (``report.manual`` is set), ``out/gradescope/<student>/results.json`` with them as manual items."""
    atomic.update_text(report_path(out, report.student), dumps(report))
    atomic.update_text(feedback_path(out, report.student), feedback_html(report, class_median))
    if report.manual is not None:
        target = gradescope_path(out, report.student)
        os.makedirs(atomic.fs_path(target.parent), exist_ok=True)  # a name like zoé under any locale
        atomic.update_text(target, json.dumps(results(report, 0), indent=2) + "\n")
