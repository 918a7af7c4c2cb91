"""A class folder of notebooks crafted against the grader's reader (broken, truncated, not UTF-8,
oversized, nested too deeply, numbers over the digit limit, wrong types) beside correct ones: each
gets its report with its reason, the correct ones their full marks, and nothing stops the run."""
import json
import os

import pytest
import nbformat

from autograder.__main__ import main
from autograder.catalogue import REFERENCE
from autograder.rubric import RUBRIC

STRUCTURAL = sum(i.points for i in RUBRIC if not i.needs_weights)  # what a run without trained results grades


def _notebook(code: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]))


@pytest.mark.slow
def test_every_hostile_notebook_gets_its_reason_and_the_correct_ones_full_marks(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    good = _notebook(REFERENCE)
    files = {  # name: (content, what its report must say)
        "broken.ipynb": ("{not json", "is not a valid notebook"),
        "truncated.ipynb": (good[: len(good) // 2], "is not a valid notebook"),
        "deep.ipynb": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "bignum.ipynb": ('{"cells": [], "nbformat": 1' + "0" * 5000 + "}", "Exceeds the limit"),
        "cells_a_dict.ipynb": (json.dumps({"cells": {"cell_type": "code"}}), "has no list of cells"),
        "a_list.ipynb": ("[1, 2, 3]", "has no list of cells"),
        "source_numbers.ipynb": (json.dumps({"cells": [{"cell_type": "code", "source": [1, 2]}]}),
                                 "cell 1's source is not text"),
        "source_object.ipynb": (json.dumps({"cells": [{"cell_type": "code", "source": {"a": "b"}}]}),
                                "cell 1's source is not text"),
        "much_code.py": ("#" * (5 * 2**20), "MB of code"),
        "deep_code.py": ("x = " + "-" * 100_000 + "1\n", "nested too deeply to parse"),
        "null_bytes.py": ("class FCN32s:\x00\n", "syntax error"),
    }
    for name, (content, _) in files.items():
        (folder / name).write_text(content, encoding="utf-8")
    (folder / "latin1.ipynb").write_bytes(_notebook("# café\n").encode("latin-1"))
    files["latin1.ipynb"] = (None, "is not UTF-8")
    with open(folder / "oversized.ipynb", "wb") as f:  # sparse: 101 MB on paper, nothing on disk
        f.truncate(101 * 2**20)
    files["oversized.ipynb"] = (None, "over the 100.00 MB allowed")
    (folder / "reference.ipynb").write_text(good, encoding="utf-8")
    (folder / "reference_py.py").write_text(REFERENCE, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["grade", str(folder), "--out", str(out), "--seed", "2", "--jobs", "2", "--timeout", "120"]) == 0
    for name, (_, reason) in files.items():
        report = json.loads((out / f"{os.path.splitext(name)[0]}.json").read_text(encoding="utf-8"))
        said = " ".join(report["notes"] + [c["message"] for c in report["checks"]])
        assert reason in said, (name, said[:500])
        assert report["score"] == 0 and not report.get("not_graded"), name  # the student's file, not the grader
    for name in ("reference", "reference_py"):
        assert json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["score"] == STRUCTURAL, name
    rows = (out / "grades.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(files) + 3
