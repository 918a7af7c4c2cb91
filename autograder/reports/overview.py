"""The instructor's view of a class: ``OUT/index.html``, one self-contained page (inline SVG, no
script, nothing fetched) rebuilt after every run and by ``summarize``. First who needs the
instructor (reports/attention.py: not graded and why, near-zero scores, flagged predictions,
integrity pairs linking to their instructor-only pages, unscored written answers), then every
student's marks, the score distribution, each rubric item with how many passed it, the diagnoses
that cost most points (reports/diagnoses.py), the predictions across the class (reports/charts.py)
and the run's facts (seed, isolation layers, time). Instructor-only: it names students."""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from ..atomic import write_text
from ..questions import question_points
from ..results import Report, Status
from ..rubric import RUBRIC
from .attention import STYLE as ATTENTION_STYLE, attention_html, link, students_table
from .charts import histogram_svg, predictions_html
from .diagnoses import TOP, diagnoses
from .pairs import write_pair_pages


def item_counts(reports: list[Report]) -> dict[str, Counter]:
    """Per rubric item: how many students passed, failed, were flagged, were not graded (by Status)."""
    counts = {i.name: Counter() for i in RUBRIC}
    for r in reports:
        for c in r.checks:
            if c.name in counts:
                counts[c.name][c.status] += 1
    return counts


def _bar(share: float, colour: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='120' height='12'><rect width='120' height='12' "
            f"fill='#eee'/><rect width='{120 * share:.1f}' height='12' fill='{colour}'/></svg>")


def _items_html(reports: list[Report]) -> str:
    """The rubric table's rows: per item, how many passed, failed, were flagged, not graded."""
    e = html.escape
    counts = item_counts(reports)
    rows = []
    for item in RUBRIC:
        c = counts[item.name]
        graded = len(reports) - c[Status.NOT_GRADED]
        rows.append(
            f"<tr><td>{e(item.title)}<br><code>{item.name}</code></td><td>{item.points}</td>"
            f"<td class='passed' data-item='{item.name}'>{c[Status.PASSED]}</td><td>{c[Status.FAILED]}</td>"
            f"<td>{c[Status.FLAGGED]}</td><td>{c[Status.NOT_GRADED]}</td>"
            f"<td>{_bar(c[Status.PASSED] / graded, '#3a3') if graded else 'not graded'}</td></tr>")
    return "".join(rows)


def _diagnoses_html(reports: list[Report]) -> str:
    """The costliest diagnoses: the first TOP as rows, the rest folded."""
    e = html.escape

    def row(d) -> str:
        return (f"<tr><td><code>{e(d.item)}</code></td><td>{e(d.label)}</td><td class='count'>&times; "
                f"{len(d.students)}</td><td>{d.lost}</td><td>{', '.join(link(s) for s in sorted(d.students))}</td></tr>")
    found = diagnoses(reports)
    if not found:
        return "<p>Nothing failed.</p>"
    head = "<tr><th>item</th><th>diagnosis</th><th>students</th><th>points lost</th><th>who</th></tr>"
    rest = (f"<details><summary>{len(found) - TOP} more diagnoses</summary><table class='diagnoses rest'>{head}"
            + "".join(row(d) for d in found[TOP:]) + "</table></details>") if len(found) > TOP else ""
    return f"<table class='diagnoses'>{head}{''.join(row(d) for d in found[:TOP])}</table>{rest}"


def _facts_html(reports: list[Report], facts: dict[str, str] | None) -> str:
    e = html.escape
    seeds = sorted({str(r.seed) for r in reports})
    layers = sorted({", ".join(r.isolation.get("layers", [])) or "unknown" for r in reports})
    all_facts = {"students": str(len(reports)), "seed": ", ".join(seeds), "isolation layers": "; ".join(layers),
                 **(facts or {})}
    return "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in all_facts.items())


def _written_html(reports: list[Report], max_score: int) -> str:
    """Once written-answer scores are imported: per question, how many students have a score, their
    mean and who has none yet; then the mean total of the students with every question scored.
    '' before any import."""
    if not any(r.manual for r in reports):
        return ""
    e = html.escape
    questions = {q: (f"Question {q.removeprefix('question')}", p) for q, p in question_points().items()}
    for r in reports:
        for q, m in r.manual.items() if r.manual else ():
            questions.setdefault(q, (m.title.removesuffix(" (graded by hand)"), m.max_score))
    rows = []
    for q, (title, points) in sorted(questions.items()):
        scored = [r.manual[q].score for r in reports if q in (r.manual or {})]
        missing = [r.student for r in reports if q not in (r.manual or {})]
        mean = f"{sum(scored) / len(scored):.1f} of {points:g}" if scored else "&ndash;"
        rows.append(f"<tr><td>{e(title)} <code>{e(q)}</code></td><td>{points:g}</td>"
                    f"<td class='scored' data-question='{e(q)}'>{len(scored)} of {len(reports)}</td><td>{mean}</td>"
                    f"<td>{', '.join(link(s) for s in missing) or '&ndash;'}</td></tr>")
    complete = [r.total for r in reports if all(q in (r.manual or {}) for q in questions)]
    full = max_score + sum(p for _, p in questions.values())
    totals = (f"mean total {sum(complete) / len(complete):.1f} of {full:g}, written answers included "
              f"(students with every question scored: {len(complete)})" if complete
              else "no student has every question scored yet")
    return (f"<h3>Written answers (graded by hand)</h3><table class='written'><tr><th>question</th><th>points</th>"
            f"<th>scored</th><th>mean</th><th>not scored yet</th></tr>{''.join(rows)}</table><p>{totals}.</p>")


def _scores_html(reports: list[Report]) -> str:
    max_score = max((r.max_score for r in reports), default=0)
    scores = [r.score for r in reports]
    mean = sum(scores) / len(scores) if scores else 0
    return f"""<p>Automatic score: mean {mean:.1f} of {max_score}, {sum(s == max_score for s in scores)} with full marks
(the written answers are graded by hand).</p>
{histogram_svg(scores, max_score)}{_written_html(reports, max_score)}"""


def overview_html(reports: list[Report], facts: dict[str, str] | None = None) -> str:
    """The class overview page: who needs the instructor first, then every student, the scores and
    items, what cost most points, the predictions across the class, the run's facts.

    Args:
        reports: every student's report (as in ``<student>.json``).
        facts: extra lines for the run's facts (e.g. ``{"graded": "2026-12-04 23:10 UTC", "grading time": "41 s"}``),
            from the record: rewriting the page from the same record writes the same bytes.
    """
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>FCN assignment: class overview</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:0.5em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}td.passed,td.count{{font-weight:bold}}
code{{font-size:90%}}h2{{margin-top:1.6em}}div.models{{display:flex;flex-wrap:wrap;gap:1em}}{ATTENTION_STYLE}</style></head><body>
<h1>FCN assignment: class overview</h1>
<p>Instructor-only: this page names students and integrity flags.</p>
<h2>Who needs you</h2>
{attention_html(reports)}
<h2>Every student ({len(reports)}), lowest total first</h2>
<p>Each item's points (&ndash;: not graded, ?: flagged for review); each name links to the student's feedback page.</p>
{students_table(reports)}
<h2>Scores</h2>
{_scores_html(reports)}
<h2>Rubric items</h2>
<table class='items'><tr><th>item</th><th>points</th><th>passed</th><th>failed</th><th>flagged</th><th>not graded</th>
<th>share passed (of graded)</th></tr>{_items_html(reports)}</table>
<h2>What cost most points</h2>
<p>Failed checks grouped by what the grader found (for the equivalence checks, the first stage that departs from the
reference); a submission that fails as a whole is counted once, under its cause (item <code>the whole submission</code>).</p>
{_diagnoses_html(reports)}
{predictions_html(reports)}
<h2>The run</h2>
<table class='facts'>{_facts_html(reports, facts)}</table>
</body></html>
"""


def write_overview(out: Path, reports: list[Report], facts: dict[str, str] | None = None) -> Path:
    """Write ``out/index.html`` whole (temp + rename, UTF-8) and return its path."""
    path = Path(out) / "index.html"
    write_text(path, overview_html(sorted(reports, key=lambda r: r.student), facts))
    return path


def class_pages(out: Path, reports: list[Report], facts: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """After a run's (or ``summarize``'s) reports are recorded and their integrity flags computed
    (:func:`autograder.judging.integrity.flag_class`): write the instructor-only page of each flagged pair and
    the overview. The
    students' files are views of the record that the caller rewrites next (the flags recorded,
    then classrun.write_views), not written here. Returns the overview's path and a line for what
    could not be written.

    Args:
        out: the reports folder (``<student>.json``, ``feedback/<student>.html``).
        reports: the reports of the class (or of a shard, until ``summarize`` joins them).
        facts: extra lines for the page's run facts.
    """
    out = Path(out)
    problems = []
    try:
        write_pair_pages(out, reports)
    except OSError as err:
        problems.append(f"the integrity pair pages could not be written into {out / 'instructor-only'} ({err}); the "
                        f"flags are on the overview")
    return write_overview(out, reports, facts), problems
