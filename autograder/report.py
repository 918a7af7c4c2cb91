"""What graders and students read: a score table, a class CSV, JSON, Gradescope results, HTML pages."""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from . import atomic
from fcnkit.spec import miou_thresholds
from .integrity import feedback_section  # the page's integrity note (filled in by overview.class_pages)
from .rubric import FLAGGED, NOT_GRADED, RUBRIC


def public(report: dict) -> dict:
    """The report without its private (non-JSON, run-dependent) keys."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def write_json(reports: list[dict], path: Path) -> None:
    data = public(reports[0]) if len(reports) == 1 else [public(r) for r in reports]
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _graded(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["status"] != NOT_GRADED]


def score_table(reports: list[dict]) -> str:
    """A plain-text table: one row per student, one column per model, with the total out of what
    this run could grade; below it, what it did not grade and how to grade it."""
    models = {"fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}
    partial = any(len(_graded(r["checks"])) < len(r["checks"]) for r in reports)
    total = "total" + (" (of gradable)" if partial else "")
    header = f"{'student':<28} " + " ".join(f"{label:>9}" for label in models.values()) + f" {total:>20}  time"
    lines = [header, "-" * len(header)]
    for r in reports:
        cells = []
        for model in models:
            graded = [c for c in _graded(r["checks"]) if c["model"] == model]
            cells.append(f"{sum(c['score'] for c in graded):>4}/{sum(c['max_score'] for c in graded):<4}")
        out_of = f"{r['score']:>4}/{sum(c['max_score'] for c in _graded(r['checks'])):<4}"
        lines.append(f"{r['student'][:28]:<28} " + " ".join(cells) + f" {out_of:>20} {r.get('_seconds', 0):5.1f}s")
    pending = {}
    for r in reports:
        for c in r["checks"]:
            if c["status"] == NOT_GRADED:
                pending.setdefault(c["message"], {})[c["name"]] = c["max_score"]
    for message, items in pending.items():
        lines.append(f"\nnot graded ({', '.join(items)}: {sum(items.values())} points): "
                     + message.removeprefix("not graded: "))
    flagged = [(r["student"], c) for r in reports for c in r["checks"] if c["status"] == FLAGGED]
    if flagged:
        lines.append(f"\nflagged for review (not credited; {len(flagged)}):")
        lines += [f"  {student}: {_flagged(c)}" for student, c in flagged]
    return "\n".join(lines)


def _flagged(check: dict) -> str:
    return f"{check['name']}: {check['message'].removeprefix('flagged for review: ')}"


def write_csv(reports: list[dict], path: Path) -> None:
    """Class summary: one row per student with every check's points, and the written answers' scores
    (with the total) once they are imported (python -m autograder answers --import). Written whole,
    as UTF-8; a cell that starts like a formula (a file named ``=HYPERLINK(...).py``) stays text."""
    questions = sorted({q for r in reports for q in r.get("manual", {})})
    rows = [["student", "score", "max_score", *[i.name for i in RUBRIC], *questions,
             *(["total"] if questions else []), "submission", "review"]]
    for r in reports:
        points = {c["name"]: ("" if c["status"] == NOT_GRADED else c["score"]) for c in r["checks"]}
        manual = [f"{r['manual'][q]['score']:g}" if q in r.get("manual", {}) else "" for q in questions]
        review = "; ".join([*([f"not graded: {r['not_graded']}"] if r.get("not_graded") else []),
                            *(_flagged(c) for c in r["checks"] if c["status"] == FLAGGED)])
        rows.append([r["student"], r["score"], r["max_score"], *[points.get(i.name, "") for i in RUBRIC], *manual,
                     *([f"{r.get('total', r['score']):g}"] if questions else []), r["submission"], review])
    atomic.write_text(path, atomic.csv_text(rows))


def isolation_line(report: dict) -> str:
    isolation = report.get("isolation", {})
    return f"Graded under isolation: {', '.join(isolation.get('layers', [])) or 'unknown'}."


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode()


def _image_png(array) -> str:
    from PIL import Image
    from fcnkit.spec import colorize
    buf = io.BytesIO()
    Image.fromarray(colorize(array)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def feedback_html(report: dict) -> str:
    """A self-contained feedback page (images embedded) for one student."""
    e = html.escape
    marks = {"passed": "&#10004;", "failed": "&#10008;", NOT_GRADED: "pending", FLAGGED: "under review"}
    rows = "".join(
        f"<tr class='{c['status'].replace(' ', '-')}'><td>{e(c['title'])}</td>"
        f"<td>{'&ndash;' if c['status'] == NOT_GRADED else c['score']} / {c['max_score']}</td>"
        f"<td>{marks[c['status']]}</td><td>{e(c['message'])}</td></tr>" for c in report["checks"])
    pending = report["max_score"] - report.get("graded_max_score", report["max_score"])
    notes = "".join(f"<li>{e(n)}</li>" for n in report["notes"])
    manual = "".join(f"<tr><td>{e(m['title'])}</td><td>{m['score']:g} / {m['max_score']:g}</td>"
                     f"<td>{e(m['comment']) or '&ndash;'}</td></tr>" for m in report.get("manual", {}).values())
    written = (f"<h2>Written answers (graded by hand)</h2><table><tr><th>question</th><th>points</th>"
               f"<th>comment</th></tr>{manual}</table><p>Total: <b>{report.get('total', report['score']):g}</b></p>"
               if manual else "")
    thresholds = miou_thresholds()
    figures = ("<p>The mIoU items need a test mIoU of at least "
               f"{thresholds['fcn32s']:.2f} (FCN-32s) and {thresholds['fcn8s']:.2f} (FCN-8s) on the whole test split; "
               "predictions of a smoke run (FCNKIT_SMOKE=1) do not cover it.</p>")
    for model, scores in report.get("metrics", {}).items():
        from fcnkit.viz import plot_class_iou  # matplotlib only for reports with trained results
        figures += f"<h2>{e(model)}: test mIoU {scores['mean_iou']:.3f} (threshold {thresholds[model]:.2f})</h2>"
        figures += f"<img alt='per-class IoU' src='data:image/png;base64,{_png(plot_class_iou(scores['per_class_iou'], model))}'>"
        for pred in report.get("_predictions", {}).get(model, []):
            figures += f"<img alt='prediction' height='200' src='data:image/png;base64,{_image_png(pred)}'>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FCN assignment feedback: {e(report['student'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}tr.passed td:nth-child(3){{color:green}}
tr.failed td:nth-child(3){{color:#b00}}tr.not-graded td{{color:#777}}tr.flagged td:nth-child(3){{color:#a60}}</style></head><body>
<h1>FCN assignment: {e(report['student'])}</h1>
<p>Automatic score: <b>{report['score']} / {report.get('graded_max_score', report['max_score'])}</b>{f' ({pending} more points pending: not graded yet)' if pending else ''}{'' if manual else ' (the written answers are graded by hand)'}.</p>
<table><tr><th>check</th><th>points</th><th></th><th>what the grader found</th></tr>{rows}</table>
{written}{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}{figures}
{feedback_section(report)}
</body></html>
"""
