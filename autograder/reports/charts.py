"""The overview's charts, as inline SVG (no script, nothing fetched): the score distribution, and with
submitted predictions each model's test mIoU across the class against its threshold and the IoU of
each class across the class (the classes everyone misses)."""
from __future__ import annotations

import html
import statistics

from fcnkit.spec import CLASS_NAMES, MODEL_TITLES, PALETTE, miou_thresholds

from ..results import Report

SVG = "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='{label}'>"
MISSED = 0.2  # a class whose median IoU across the class is below this is one everyone misses


def _bars(counts: list[int], labels: list[str], what: str, aria: str, width: int = 640, height: int = 220,
          marks: dict[float, str] | None = None, axis: str = "") -> str:
    """Vertical bars of ``counts`` (one per bin, each bin's ``labels`` under its left edge); ``marks``:
    {bin position: text} drawn as dashed red lines."""
    top = max(counts) or 1
    left, bottom, bar = 36, 30, (width - 46) / len(counts)
    parts = [SVG.format(w=width, h=height, label=aria),
             f"<line x1='{left}' y1='{height - bottom}' x2='{width - 10}' y2='{height - bottom}' stroke='#333'/>"]
    for i, (n, low) in enumerate(zip(counts, labels)):
        h = (height - bottom - 20) * n / top
        x, y = left + i * bar, height - bottom - h
        parts.append(f"<rect x='{x + 1:.1f}' y='{y:.1f}' width='{bar - 2:.1f}' height='{h:.1f}' fill='#4a7ab5'>"
                     f"<title>{low}: {n} {what}</title></rect>")
        if n:
            parts.append(f"<text x='{x + bar / 2:.1f}' y='{y - 4:.1f}' font-size='11' text-anchor='middle'>{n}</text>")
        parts.append(f"<line x1='{x:.1f}' y1='{height - bottom}' x2='{x:.1f}' y2='{height - bottom + 4}' stroke='#333'/>"
                     f"<text x='{x:.1f}' y='{height - bottom + 14}' font-size='10' text-anchor='middle'>{low}</text>")
    for position, text in (marks or {}).items():
        x = left + position * bar
        parts.append(f"<line class='threshold' x1='{x:.1f}' y1='12' x2='{x:.1f}' y2='{height - bottom}' stroke='#c00' "
                     f"stroke-dasharray='4 3'/><text x='{x + 3:.1f}' y='12' font-size='11' fill='#c00'>"
                     f"{html.escape(text)}</text>")
    parts.append(f"<text x='{width - 10}' y='{height - 4}' font-size='11' text-anchor='end'>{html.escape(axis)}</text>"
                 f"<text x='4' y='14' font-size='11'>{what}</text></svg>")
    return "".join(parts)


def histogram_svg(scores: list[float], max_score: float, bin_width: float = 5) -> str:
    """The scores in bins of ``bin_width`` points (the last bin holds full marks)."""
    bins = max(1, int(-(-max_score // bin_width)))
    counts = [0] * bins
    for s in scores:
        counts[min(bins - 1, int(s // bin_width))] += 1
    return _bars(counts, [f"{i * bin_width:g}" for i in range(bins)], "students", "score distribution",
                 axis=f"points (of {max_score:g})")


def miou_histogram_svg(values: list[float], threshold: float, model: str, step: float = 0.05) -> str:
    """One model's test mIoU across the class in bins of ``step``, 0 to 0.8, the threshold marked."""
    bins = int(round(0.8 / step))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / step))] += 1
    return _bars(counts, [f"{i * step:.2f}".lstrip("0") or "0" for i in range(bins)], "students",
                 f"{model} test mIoU", width=520, height=200, marks={threshold / step: f"threshold {threshold:.2f}"},
                 axis="test mIoU")


def class_iou_svg(per_student: list[list], model: str, width: int = 520) -> str:
    """Per class, the IoU across the class: the middle half of the students as a box, the median as a
    black tick and number; a class everyone misses (median below MISSED) in red."""
    row, left, right = 20, 90, 60
    span = width - left - right
    height = row * len(CLASS_NAMES) + 30
    parts = [SVG.format(w=width, h=height, label=f"{model} IoU per class across the class")]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = left + tick * span
        parts.append(f"<line x1='{x:.1f}' y1='4' x2='{x:.1f}' y2='{height - 22}' stroke='#ddd'/><text x='{x:.1f}' "
                     f"y='{height - 8}' font-size='10' text-anchor='middle'>{tick:g}</text>")
    for c, name in enumerate(CLASS_NAMES):
        values = sorted(v[c] for v in per_student if v[c] is not None)
        y = 4 + c * row
        colour = "rgb({},{},{})".format(*PALETTE[c])
        parts.append(f"<rect x='{left - 84}' y='{y + 4}' width='10' height='10' fill='{colour}' stroke='#333'/>"
                     f"<text x='{left - 70}' y='{y + 13}' font-size='11'>{name}</text>")
        if not values:
            continue
        q1, median, q3 = (statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3)
        missed = median < MISSED
        parts.append(f"<rect x='{left + q1 * span:.1f}' y='{y + 3}' width='{max(1.0, (q3 - q1) * span):.1f}' "
                     f"height='12' fill='{'#f3b6b6' if missed else '#b9cde6'}'><title>{name}: median {median:.2f}, "
                     f"middle half {q1:.2f}-{q3:.2f} ({len(values)} students)</title></rect>"
                     f"<line x1='{left + median * span:.1f}' y1='{y + 1}' x2='{left + median * span:.1f}' y2='{y + 17}' "
                     f"stroke='#000' stroke-width='2'/><text x='{width - right + 6}' y='{y + 13}' font-size='11' "
                     f"fill='{'#c00' if missed else '#222'}'>{median:.2f}</text>")
    parts.append("</svg>")
    return "".join(parts)


def class_medians(reports: list[Report]) -> dict[str, list]:
    """Per model with scored predictions, the class's median IoU of each class (None where no one has one)."""
    found = {}
    for model in MODEL_TITLES:
        per_class = [r.metrics[model]["per_class_iou"] for r in reports if model in (r.metrics or {})]
        if per_class:
            found[model] = [statistics.median(vs) if (vs := [p[c] for p in per_class if p[c] is not None]) else None
                            for c in range(len(CLASS_NAMES))]
    return found


def predictions_html(reports: list[Report]) -> str:
    """Per model with submitted predictions: the mIoU histogram and the per-class IoU; '' without any."""
    thresholds = miou_thresholds()
    blocks = []
    for model, title in MODEL_TITLES.items():
        scored = [r.metrics[model] for r in reports if model in (r.metrics or {})]
        if not scored:
            continue
        values = [s["mean_iou"] for s in scored]
        below = sum(v < thresholds[model] for v in values)
        per_class = [s["per_class_iou"] for s in scored]
        medians = {name: statistics.median(vs) for c, name in enumerate(CLASS_NAMES)
                   if (vs := [p[c] for p in per_class if p[c] is not None])}
        missed = [n for n, m in medians.items() if m < MISSED]
        blocks.append(
            f"<div class='model'><h3>{title}: {len(values)} students with scored predictions, {below} below the "
            f"threshold {thresholds[model]:.2f}</h3>{miou_histogram_svg(values, thresholds[model], title)}"
            f"{class_iou_svg(per_class, title)}<p>IoU per class: the middle half of the students (box), the median (tick "
            f"and number). {'Classes most students miss (median IoU under ' + format(MISSED, 'g') + '): ' + ', '.join(missed) if missed else 'No class has a median IoU under ' + format(MISSED, 'g')}."
            f"</p></div>")
    return ("<h2>Predictions across the class</h2><p>Flagged predictions (smoke runs, implausible) are not scored and "
            "not counted here.</p><div class='models'>" + "".join(blocks) + "</div>") if blocks else ""
