"""The instructor's view of a class, on a real grading run of the catalogue (every submission as a
student's folder) plus four students with submitted predictions: the overview's per-item counts are
grades.csv's, the page loads in headless Chromium without an error, and integrity flags name the
students whose predictions or recorded weights are the same, and only them."""
import ast
import csv
import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from autograder.__main__ import main
from autograder.catalogue import REFERENCE
from autograder.reports.integrity import TEMPLATE, flag_class
from autograder.results import Report
from autograder.rubric import RUBRIC
from fcnkit.predictions import MAPS_FILE, META_FILE, PredictionsMeta
from fcnkit.splits import SAMPLE_ROOT, cmp_splits, load_label

SHA_A, SHA_B = "a" * 64, "b" * 64


def noisy_labels(noise: float, seed: int) -> dict:
    """The sample's test labels with a share ``noise`` of pixels set to random classes: what
    different trainings look like (they agree where the labels are easy, differ elsewhere)."""
    rng = np.random.default_rng(seed)
    maps = {}
    for jpg in cmp_splits(SAMPLE_ROOT)["test"]:
        label = load_label(jpg, 0.5)
        maps[jpg.stem] = np.where(rng.random(label.shape) < noise, rng.integers(0, 12, label.shape),
                                  label).astype(np.uint8)
    return maps


def hand_in(folder: Path, maps: dict, sha: str) -> None:
    """A student's notebook folder with outputs/ as the notebook writes it, for both models."""
    folder.mkdir(parents=True)
    (folder / "fcn_segmentation.py").write_text(REFERENCE)
    for kind in ("fcn32s", "fcn8s"):
        outputs = folder / "outputs"
        outputs.mkdir(exist_ok=True)
        np.savez_compressed(outputs / MAPS_FILE.format(kind=kind), **maps)
        meta = PredictionsMeta(kind, list(maps), 0.5, weights_sha256=sha if kind == "fcn8s" else "")
        (outputs / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(meta)))


@pytest.fixture(scope="module")
def graded(catalogue, tmp_path_factory) -> Path:
    klass = tmp_path_factory.mktemp("class") / "class"
    shutil.copytree(catalogue, klass)
    original = noisy_labels(0.4, seed=0)
    rng = np.random.default_rng(9)
    near = {k: np.where(rng.random(m.shape) < 0.01, (m + 1) % 12, m).astype(np.uint8) for k, m in original.items()}
    hand_in(klass / "zz_copier" / "fcn_segmentation", original, "")
    hand_in(klass / "zz_original" / "fcn_segmentation", original, "")
    hand_in(klass / "zz_near_copy" / "fcn_segmentation", near, "")
    hand_in(klass / "zz_honest_1" / "fcn_segmentation", noisy_labels(0.4, seed=1), SHA_A)
    hand_in(klass / "zz_honest_2" / "fcn_segmentation", noisy_labels(0.4, seed=2), SHA_A)
    hand_in(klass / "zz_honest_3" / "fcn_segmentation", noisy_labels(0.4, seed=3), SHA_B)
    out = tmp_path_factory.mktemp("reports")
    assert main(["grade", str(klass), "--out", str(out), "--seed", "7", "--data", str(SAMPLE_ROOT)]) == 0
    return out


def grades(out: Path) -> list[dict]:
    with open(out / "grades.csv", newline="") as f:
        return list(csv.DictReader(f))


def expected_passed(out: Path) -> dict[str, int]:
    """Per item, how many rows of grades.csv hold the item's full points."""
    rows = grades(out)
    return {i.name: sum(r[i.name] == str(i.points) for r in rows) for i in RUBRIC}


def test_the_overviews_counts_are_those_of_grades_csv(graded):
    page = (graded / "index.html").read_text(encoding="utf-8")
    shown = {m[0]: int(m[1]) for m in re.findall(r"data-item='(\w+)'>(\d+)<", page)}
    assert shown == expected_passed(graded)
    assert f"<tr><th>students</th><td>{len(grades(graded))}</td></tr>" in page
    assert "<th>seed</th><td>7</td>" in page
    # the diagnosis of the swapped crops, linking to the student's page, which exists
    row = next(line for line in page.split("<tr>") if ">crop of score_pool4<" in line)
    assert "href='feedback/fcn8s_skip_offsets_swapped.html'" in row
    assert (graded / "feedback" / "fcn8s_skip_offsets_swapped.html").is_file()
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_the_overview_loads_in_headless_chromium_without_an_error(graded, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((graded / "index.html").as_uri())
        shown = {cell.get_attribute("data-item"): int(cell.inner_text()) for cell in page.query_selector_all("td.passed")}
        bars = len(page.query_selector_all("svg[aria-label='score distribution'] rect"))
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        browser.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert shown == expected_passed(graded)
    assert bars == math.ceil(sum(item.points for item in RUBRIC) / 5)  # 0 to full marks in bins of 5 points
    assert (tmp_path / "overview.png").stat().st_size > 10_000


def flags(out: Path, student: str, kind: str) -> dict[str, str]:
    return {f["other"]: f["evidence"] for f in json.loads((out / f"{student}.json").read_text())["integrity"]
            if f["kind"] == kind}


def test_identical_predictions_flag_both_students_naming_each_other(graded):
    assert set(flags(graded, "zz_copier", "predictions")) == {"zz_original", "zz_near_copy"}
    assert set(flags(graded, "zz_original", "predictions")) == {"zz_copier", "zz_near_copy"}
    evidence = flags(graded, "zz_copier", "predictions")["zz_original"]
    assert "8 of 8 maps identical" in evidence and "100.0% of" in evidence
    assert "0 of 8 maps identical" in flags(graded, "zz_near_copy", "predictions")["zz_copier"]
    for student, other in (("zz_copier", "zz_original"), ("zz_original", "zz_copier")):
        page = (graded / "feedback" / f"{student}.html").read_text(encoding="utf-8")
        assert f"with <b>{other}</b>" in page and "not a penalty" in page
    overview = (graded / "index.html").read_text(encoding="utf-8")
    assert "<li class='pair predictions'><a href='feedback/zz_copier.html'>zz_copier</a> and <a href='feedback/" \
           "zz_original.html'>zz_original</a>: FCN8s test predictions: 8 of 8 maps identical" in overview
    # one group of the three, not three lines
    assert "submitted predictions</b>: <a href='feedback/zz_copier.html'>zz_copier</a>, <a href='feedback/" \
           "zz_near_copy.html'>zz_near_copy</a>, <a href='feedback/zz_original.html'>zz_original</a> (3 students)" \
           in overview
    # never a penalty: the copier's score is the original's
    rows = {r["student"]: r for r in grades(graded)}
    assert rows["zz_copier"]["score"] == rows["zz_original"]["score"]


def test_independent_predictions_are_not_flagged(graded):
    for student in ("zz_honest_1", "zz_honest_2", "zz_honest_3"):
        assert flags(graded, student, "predictions") == {}
    page = (graded / "feedback" / "zz_honest_3.html").read_text(encoding="utf-8")
    note = page.split("<!-- integrity -->")[1].split("<!-- /integrity -->")[0]
    assert "submitted predictions" not in note and "recorded weights" not in note  # (its code is the reference's)


def test_the_same_recorded_weights_are_flagged(graded):
    assert set(flags(graded, "zz_honest_1", "weights")) == {"zz_honest_2"}
    assert set(flags(graded, "zz_honest_2", "weights")) == {"zz_honest_1"}
    assert flags(graded, "zz_honest_3", "weights") == {}
    assert SHA_A[:16] in flags(graded, "zz_honest_1", "weights")["zz_honest_2"]


def test_summarize_recomputes_the_flags_of_a_sharded_class(graded, tmp_path):
    """Shards see part of the class each: summarize compares the whole class again, and puts the
    flags into the reports and pages the shards wrote."""
    shard = tmp_path / "shard"
    shutil.copytree(graded, shard)
    for path in shard.glob("*.json"):
        report = json.loads(path.read_text())
        report["integrity"] = []
        path.write_text(json.dumps(report))
    assert main(["summarize", str(shard)]) == 0
    assert set(flags(shard, "zz_copier", "predictions")) == {"zz_original", "zz_near_copy"}
    assert "with <b>zz_original</b>" in (shard / "feedback" / "zz_copier.html").read_text(encoding="utf-8")
    assert (shard / "index.html").read_text(encoding="utf-8").count("<li class='pair predictions'>") == 3 * 2


class Rename(ast.NodeTransformer):
    """What a copier does: other names for the variables, arguments and layers."""
    def visit_Name(self, node):
        node.id = f"my_{node.id}" if node.id in {"h", "x", "fcn"} else node.id
        return node

    def visit_arg(self, node):
        node.arg = f"my_{node.arg}" if node.arg in {"x", "fcn"} else node.arg
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        node.attr = node.attr.replace("score_pool", "skip")
        return node


def test_renamed_and_reformatted_code_is_the_same_code_and_the_templates_is_nobodys(tmp_path):
    renamed = ast.unparse(Rename().visit(ast.parse(REFERENCE)))  # other names, no comments, other layout
    assert renamed != REFERENCE and "my_h" in renamed and "skip4" in renamed
    files = {"author": REFERENCE, "copier": renamed}
    reports = []
    for student, source in files.items():
        (tmp_path / student).mkdir()
        (tmp_path / student / "fcn_segmentation.py").write_text(source)
        reports.append(Report(student, str(tmp_path / student / "fcn_segmentation.py")))
    for student in ("untouched_1", "untouched_2"):  # the release as handed out: only the template's code
        (tmp_path / student).mkdir()
        shutil.copy(TEMPLATE, tmp_path / student / "fcn_segmentation.ipynb")
        reports.append(Report(student, str(tmp_path / student / "fcn_segmentation.ipynb")))
    flag_class(reports)
    flagged = {r.student: [(f.kind, f.other) for f in r.integrity] for r in reports}
    assert flagged == {"author": [("code", "copier")], "copier": [("code", "author")], "untouched_1": [],
                       "untouched_2": []}
    assert "100% of" in reports[0].integrity[0].evidence
