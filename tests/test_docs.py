"""The README's rubric table is written by notebooks/build.py from the rubric; these check it
independently (its rows parsed back against autograder/rubric.py, the thresholds of fcnkit.spec and
the source notebook's written questions), and that no prose states a total the table would leave behind."""
from __future__ import annotations

import json
import re
from pathlib import Path

from autograder.rubric import RUBRIC
from fcnkit.spec import MIOU_THRESHOLDS

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
SOURCE = REPO / "notebooks" / "source" / "fcn_segmentation" / "fcn_segmentation.ipynb"
PARTS = {"FCN-32s": "fcn32s", "FCN-8s": "fcn8s"}


def question_points() -> list[int]:
    cells = json.loads(SOURCE.read_text(encoding="utf-8"))["cells"]
    marks = [c.get("metadata", {}).get("nbgrader", {}) for c in cells]
    return [m["points"] for m in marks if m.get("grade_id", "").startswith("question") and "points" in m]


def rubric_table() -> list[tuple[str, str, str]]:
    """The rows (part, check, points) of the README's "The rubric" table; an empty part is the row above's."""
    section = README.split("### The rubric", 1)[1]
    rows, part = [], ""
    for line in section.splitlines()[1:]:
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| part"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            part = cells[0] or part
            rows.append((part, cells[1], cells[2]))
        elif rows and not line.startswith(("|", "<!--")):
            break
    return rows


def test_the_rubric_table_has_each_items_points_in_the_rubrics_order():
    rows = rubric_table()
    items = [(PARTS[part], int(points)) for part, _, points in rows if part in PARTS]
    assert items == [(i.model, i.points) for i in RUBRIC], "README's rubric table and autograder/rubric.py differ"


def test_the_rubric_table_states_the_thresholds_and_the_questions_points():
    rows = rubric_table()
    trained = [re.search(r"\(>= (\d\.\d\d)\)", check) for part, check, _ in rows if part in PARTS and "mIoU" in check]
    assert [float(m.group(1)) for m in trained] == [MIOU_THRESHOLDS[i.model] for i in RUBRIC if i.needs_weights]
    [(_, _, questions)] = [row for row in rows if row[0] == "questions"]
    assert [int(p) for p in questions.split("+")] == question_points()


def test_no_prose_states_a_total_of_points():
    """Totals live in the generated table only: a new item must not leave a "52 of 70" behind."""
    prose = README.split("### The rubric", 1)[0] + README.split("<!-- end of the rubric table -->", 1)[1]
    stated = re.findall(r"\b\d+ of \d+ points\b|\(\d+ points\)|`\d+/\d+`", prose)
    assert not stated, stated
