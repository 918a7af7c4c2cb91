"""The README states the rubric's points and totals; they are checked against the rubric itself
(autograder/rubric.py, the thresholds of fcnkit.spec and the source notebook's written questions), so
that a changed item cannot leave the documentation behind."""
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

STRUCTURAL = sum(i.points for i in RUBRIC if not i.needs_weights)
TRAINED = sum(i.points for i in RUBRIC if i.needs_weights)
AUTOMATIC = STRUCTURAL + TRAINED


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
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_rubric_table_has_each_items_points_in_the_rubrics_order():
    rows = rubric_table()
    items = [(PARTS[part], int(points)) for part, _, points in rows if part in PARTS]
    assert items == [(i.model, i.points) for i in RUBRIC], "README's rubric table and autograder/rubric.py differ"


def test_the_rubric_table_states_the_thresholds_and_the_questions_points():
    rows = rubric_table()
    trained = [check for part, check, _ in rows if part in PARTS and "mIoU" in check]
    assert trained == [f"trained model: submitted test predictions reach mIoU >= {MIOU_THRESHOLDS[i.model]:.2f}"
                       for i in RUBRIC if i.needs_weights]
    [(_, _, questions)] = [row for row in rows if row[0] == "questions"]
    assert [int(p) for p in questions.split("+")] == question_points()


def test_the_readmes_totals_are_the_rubrics():
    assert f"structure: {STRUCTURAL} of {AUTOMATIC} points" in README
    assert f"mIoU items ({TRAINED} points)" in README
    assert f"`{STRUCTURAL}/{STRUCTURAL}` of what the run could grade" in README.replace("\n", " ")
    stated = [int(n) for n in re.findall(r"structure: (\d+) of \d+ points", README)]
    assert stated and set(stated) == {STRUCTURAL}
