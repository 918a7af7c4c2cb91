"""A submission's files in the reports folder: ``<student>.json`` and ``feedback/<student>.html``,
each written whole (temp file + rename) as UTF-8."""
from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..results import Report, dumps
from .html import feedback_html


def write_json(reports: list[Report], path: Path) -> None:
    """One report as a JSON object, several as an array."""
    atomic.write_text(path, dumps(reports[0] if len(reports) == 1 else reports))


def write_report_files(out: Path, report: Report) -> None:
    """``out/<student>.json`` and ``out/feedback/<student>.html`` (the folder must exist)."""
    write_json([report], Path(out) / f"{report.student}.json")
    atomic.write_text(Path(out) / "feedback" / f"{report.student}.html", feedback_html(report))
