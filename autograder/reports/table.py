"""The plain-text score table the grade and summarize commands print."""
from __future__ import annotations

from ..results import CheckResult, Report, Status

MODELS = {"fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}


def flagged_line(check: CheckResult) -> str:
    """A flagged check as the table, grades.csv's ``review`` column and the overview name it."""
    return f"{check.name}: {check.message.removeprefix('flagged for review: ')}"


def _row(r: Report) -> str:
    graded = [c for c in r.checks if c.graded]
    cells = []
    for model in MODELS:
        mine = [c for c in graded if c.model == model]
        cells.append(f"{sum(c.score for c in mine):>4}/{sum(c.max_score for c in mine):<4}")
    out_of = f"{r.score:>4}/{r.graded_max_score:<4}"
    return f"{r.student[:28]:<28} " + " ".join(cells) + f" {out_of:>20} {r.seconds:5.1f}s"


def score_table(reports: list[Report]) -> str:
    """A plain-text table: one row per student, one column per model, with the total out of what
    this run could grade; below it, what it did not grade and how to grade it."""
    partial = any(len([c for c in r.checks if c.graded]) < len(r.checks) for r in reports)
    total = "total" + (" (of gradable)" if partial else "")
    header = f"{'student':<28} " + " ".join(f"{label:>9}" for label in MODELS.values()) + f" {total:>20}  time"
    lines = [header, "-" * len(header), *(_row(r) for r in reports)]
    pending: dict[str, dict[str, int]] = {}
    for r in reports:
        for c in r.with_status(Status.NOT_GRADED):
            pending.setdefault(c.message, {})[c.name] = c.max_score
    for message, items in pending.items():
        lines.append(f"\nnot graded ({', '.join(items)}: {sum(items.values())} points): "
                     + message.removeprefix("not graded: "))
    flagged = [(r.student, c) for r in reports for c in r.with_status(Status.FLAGGED)]
    if flagged:
        lines.append(f"\nflagged for review (not credited; {len(flagged)}):")
        lines += [f"  {student}: {flagged_line(c)}" for student, c in flagged]
    return "\n".join(lines)
