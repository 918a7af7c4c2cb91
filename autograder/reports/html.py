"""The feedback page a student reads: ``feedback/<student>.html``, self-contained (images embedded).

It never mentions integrity flags or another student: those are the instructor's (reports/pairs.py)."""
from __future__ import annotations

import base64
import html
import io

from fcnkit.spec import MODEL_TITLES, miou_thresholds

from ..questions import question_points
from ..results import Report, Status
from .markup import STYLE as MARKUP_STYLE, render

MARKS = {Status.PASSED: "&#10004;", Status.FAILED: "&#10008;", Status.NOT_GRADED: "pending",
         Status.FLAGGED: "under review"}
STYLE = """body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}tr.passed td:nth-child(3){color:green}
tr.failed td:nth-child(3){color:#b00}tr.not-graded td{color:#777}tr.flagged td:nth-child(3){color:#a60}
div.pictures{display:grid;grid-template-columns:max-content max-content;gap:0 1em;align-items:start}
div.pictures figure{margin:0}figcaption{font-size:90%;width:600px}figure.bars figcaption{width:352px}"""


def isolation_line(report: Report) -> str:
    return f"Graded under isolation: {', '.join(report.isolation.get('layers', [])) or 'unknown'}."


def _png(fig, dpi: int = 80) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode()


def _checks_rows(report: Report) -> str:
    e = html.escape
    return "".join(
        f"<tr class='{c.status.value.replace(' ', '-')}'><td>{e(c.title)}</td>"
        f"<td>{'&ndash;' if c.status is Status.NOT_GRADED else c.score} / {c.max_score}</td>"
        f"<td>{MARKS[c.status]}</td><td>{e(c.message)}</td></tr>" for c in report.checks)


def _written(report: Report) -> str:
    """The written answers' scores, once imported; '' before."""
    e = html.escape
    manual = "".join(f"<tr><td>{e(m.title)}</td><td>{m.score:g} / {m.max_score:g}</td>"
                     f"<td>{render(m.comment) if m.comment else '&ndash;'}</td></tr>" for m in (report.manual or {}).values())
    return (f"<h2>Written answers (graded by hand)</h2><table><tr><th>question</th><th>points</th>"
            f"<th>comment</th></tr>{manual}</table>" if manual else "")


def total_line(report: Report, questions: dict[str, float]) -> str:
    """"Total: 78 of 100"; while parts are not graded, the total of what is, and what is not.

    Args:
        report: the student's report (written answers included once imported).
        questions: the written questions' points by id ({} when they are not known).
    """
    manual = report.manual or {}
    pending = report.max_score - report.graded_max_score
    unscored = {q: p for q, p in questions.items() if q not in manual}
    graded = report.graded_max_score + sum(m.max_score for m in manual.values())
    missing = [f"{pending:g} points of automatic checks"] if pending else []
    if unscored:
        missing.append(f"the written answers ({', '.join(unscored)}: {sum(unscored.values()):g} points, graded by hand)")
    elif not questions and not manual:
        missing.append("the written answers (graded by hand)")
    line = f"Total: <b>{report.total:g} of {graded:g}</b>"
    if missing:
        line += (f" graded so far; not graded yet: {'; '.join(missing)}"
                 + (f"; the assignment is out of {graded + pending + sum(unscored.values()):g}" if questions else ""))
    return f"<p class='total'>{line}.</p>"


def examples_png(shown: list[dict]) -> str:
    """The triptychs' PNG (base64), drawn once per report and kept with its examples in the record
    (pipeline/verdicts.py): a page rewritten later (the class's medians, imported answers) reuses it."""
    from fcnkit.viz import show_examples
    if "png" not in shown[0]:
        shown[0]["png"] = _png(show_examples(shown))
    return shown[0]["png"]


def _pictures(report: Report, model: str, threshold: float, median: list | None) -> str:
    """Side by side: the per-class IoU bars (the class median and the threshold marked) and the
    student's best, median and worst test images as image | truth | prediction, captioned."""
    from fcnkit.viz import plot_class_iou  # matplotlib only for reports with trained results
    e = html.escape
    title = MODEL_TITLES.get(model, model)
    scores = report.metrics[model]
    bars = plot_class_iou(scores["per_class_iou"], f"{title}: test IoU per class", median=median,
                          threshold=threshold, figsize=(4.4, 4.2))
    marked = "the black ticks: the class's median" if median else "the class's median: once the class is graded"
    cells = [f"<figure class='bars'><img alt='{e(title)} IoU per class' width='352' src='data:image/png;base64,"
             f"{_png(bars)}'><figcaption>Your IoU per class ({marked}; the dashed red line: the mIoU threshold "
             f"{threshold:.2f}).</figcaption></figure>"]
    shown = report.first_predictions.get(model, [])
    if shown:
        caption = "; ".join(f"{x['which']}: <b>{e(x['image_id'])}</b>, IoU {x['iou']:.2f}" for x in shown)
        cells.append(f"<figure class='examples'><img alt='{e(title)}: image, truth and prediction' "
                     f"src='data:image/png;base64,{examples_png(shown)}'><figcaption class='examples'>"
                     f"Your {'best, median and worst' if len(shown) == 3 else 'scored'} test images by IoU ({caption}): "
                     f"the image, its ground truth, your prediction; colours as in the legend.</figcaption></figure>")
    return f"<div class='pictures'>{''.join(cells)}</div>"


def _figures(report: Report, class_median: dict[str, list] | None = None) -> str:
    """The mIoU thresholds, and per model with submitted results its pictures."""
    e = html.escape
    thresholds = miou_thresholds()
    figures = ("<p>The mIoU items need a test mIoU of at least "
               f"{thresholds['fcn32s']:.2f} (FCN-32s) and {thresholds['fcn8s']:.2f} (FCN-8s) on the whole test split; "
               "predictions of a smoke run (FCNKIT_SMOKE=1) do not cover it.</p>")
    for model, scores in (report.metrics or {}).items():
        figures += (f"<h2>{e(MODEL_TITLES.get(model, model))}: test mIoU {scores['mean_iou']:.3f} (threshold "
                    f"{thresholds[model]:.2f})</h2>"
                    + _pictures(report, model, thresholds[model], (class_median or {}).get(model)))
    return figures


def feedback_html(report: Report, class_median: dict[str, list] | None = None) -> str:
    """A self-contained feedback page (images embedded) for one student.

    Args:
        report: the student's report.
        class_median: per model, the class's median IoU of each class (overview.class_medians), marked on
            the student's bars; no names, no one's scores but the student's.
    """
    e = html.escape
    pending = report.max_score - report.graded_max_score
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    written = _written(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FCN assignment feedback: {e(report.student)}</title>
<style>{STYLE}{MARKUP_STYLE}</style></head><body>
<h1>FCN assignment: {e(report.student)}</h1>
<p>Automatic score: <b>{report.score} of {report.graded_max_score}</b>{f' ({pending} more points pending: not graded yet)' if pending else ''}{'' if written else ' (the written answers are graded by hand)'}.</p>
<table><tr><th>check</th><th>points</th><th></th><th>what the grader found</th></tr>{_checks_rows(report)}</table>
{written}{total_line(report, question_points())}{f'<h2>Notes</h2><ul>{notes}</ul>' if notes else ''}{_figures(report, class_median)}
</body></html>
"""
