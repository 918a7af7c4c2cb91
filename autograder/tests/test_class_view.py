"""The instructor's view of a class, on a real grading run of the catalogue (every submission as a
student's folder) plus four students with submitted predictions: the overview's per-item counts are
grades.csv's, the page loads in headless Chromium without an error, integrity flags name the
students whose predictions or recorded weights are the same, and only them, and nothing a student
receives names another student or says a flag exists: the flags are on the instructor's pages."""
import ast
import base64
import csv
import dataclasses
import html
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from autograder.__main__ import main
from autograder.catalogue import REFERENCE
from autograder.reports.gradescope import results as gradescope_results
from autograder.reports.nbgrader import verdict_output
from autograder.judging.integrity import TEMPLATE, flag_class
from autograder.reports.integrity import BEGIN, END
from autograder.reports.pairs import FOLDER, pair_href, pair_stem, write_pair_pages
from autograder.results import IntegrityFlag, Report, read_reports
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


def hand_in(folder: Path, maps: dict, sha: str, code: tuple[str, str] = ("fcn_segmentation.py", REFERENCE),
            smoke: bool = False) -> None:
    """A student's notebook folder with outputs/ as the notebook writes it, for both models."""
    folder.mkdir(parents=True)
    (folder / code[0]).write_text(code[1])
    for kind in ("fcn32s", "fcn8s"):
        outputs = folder / "outputs"
        outputs.mkdir(exist_ok=True)
        np.savez_compressed(outputs / MAPS_FILE.format(kind=kind), **maps)
        meta = PredictionsMeta(kind, list(maps), 0.5, weights_sha256=sha if kind == "fcn8s" else "", smoke=smoke)
        (outputs / META_FILE.format(kind=kind)).write_text(json.dumps(dataclasses.asdict(meta)))


# Of the catalogue: the reference, a failing structure, the swapped skip crops (a diagnosis the overview links),
# and three near-copies of the reference's code (mutants and a variant: the class's code cluster). The whole
# catalogue's grades are tested through the CLI in test_golden.py; a class view needs only each kind of row.
FROM_CATALOGUE = ("reference", "fc6_kernel_3", "fcn8s_skip_offsets_swapped", "upscore_with_bias", "fcn32s_crop_0",
                  "variant_renamed_extra_layers")


@pytest.fixture(scope="module")
def graded(catalogue, tmp_path_factory) -> Path:
    klass = tmp_path_factory.mktemp("class") / "class"
    for name in FROM_CATALOGUE:
        shutil.copytree(catalogue / name, klass / name)
    original = noisy_labels(0.4, seed=0)
    rng = np.random.default_rng(9)
    near = {k: np.where(rng.random(m.shape) < 0.01, (m + 1) % 12, m).astype(np.uint8) for k, m in original.items()}
    hand_in(klass / "zz_copier" / "fcn_segmentation", original, "")
    hand_in(klass / "zz_original" / "fcn_segmentation", original, "")
    hand_in(klass / "zz_near_copy" / "fcn_segmentation", near, "")
    hand_in(klass / "zz_honest_1" / "fcn_segmentation", noisy_labels(0.4, seed=1), SHA_A)
    hand_in(klass / "zz_honest_2" / "fcn_segmentation", noisy_labels(0.4, seed=2), SHA_A)
    hand_in(klass / "zz_honest_3" / "fcn_segmentation", noisy_labels(0.4, seed=3), SHA_B)
    # an empty notebook with a smoke run's predictions (3 of the 8 maps), and the release as handed out
    smoke = dict(list(noisy_labels(0.6, seed=4).items())[:3])
    hand_in(klass / "zz_empty" / "fcn_segmentation", smoke, "", ("fcn_segmentation.ipynb", ""), smoke=True)
    (klass / "zz_untouched" / "fcn_segmentation").mkdir(parents=True)
    shutil.copy(TEMPLATE, klass / "zz_untouched" / "fcn_segmentation")
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


@pytest.mark.slow
def test_the_overviews_counts_are_those_of_grades_csv(graded):
    page = (graded / "index.html").read_text(encoding="utf-8")
    shown = {m[0]: int(m[1]) for m in re.findall(r"data-item='(\w+)'>(\d+)<", page)}
    assert shown == expected_passed(graded)
    assert f"<tr><th>students</th><td>{len(grades(graded))}</td></tr>" in page
    assert "<th>seed</th><td>7</td>" in page
    # the diagnosis of the swapped crops (where the activations depart), linking to the student's page, which exists
    row = next(line for line in page.split("<tr>") if ">departs from the reference at sum after upscore2<" in line)
    assert "href='feedback/fcn8s_skip_offsets_swapped.html'" in row
    assert (graded / "feedback" / "fcn8s_skip_offsets_swapped.html").is_file()
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.slow
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


@pytest.mark.slow
def test_identical_predictions_flag_both_students_naming_each_other(graded):
    assert set(flags(graded, "zz_copier", "predictions")) == {"zz_original", "zz_near_copy"}
    assert set(flags(graded, "zz_original", "predictions")) == {"zz_copier", "zz_near_copy"}
    evidence = flags(graded, "zz_copier", "predictions")["zz_original"]
    assert "8 of 8 maps identical" in evidence and "100.0% of" in evidence
    assert "0 of 8 maps identical" in flags(graded, "zz_near_copy", "predictions")["zz_copier"]
    overview = (graded / "index.html").read_text(encoding="utf-8")
    assert "<li class='pair predictions'><a href='feedback/zz_copier.html'>zz_copier</a> and <a href='feedback/" \
           "zz_original.html'>zz_original</a>: <b>submitted predictions</b>: 100.0% the same; FCN8s test predictions: " \
           "8 of 8 maps identical" in overview
    assert "href='instructor-only/integrity/zz_copier--zz_original.html'>side by side</a>" in overview
    # the true copy apart from the near matches, strongest first
    identical, near = overview.split("<b>Identical</b>")[1].split("<h3>")[0].split("<b>Near matches</b>")
    same = re.findall(r"<li class='pair predictions'>(.*?)</li>", identical)
    assert len(same) == 2 and all("zz_copier.html'>zz_copier</a> and <a href='feedback/zz_original.html'" in p
                                  for p in same)  # one pair, two models
    assert "".join(re.findall(r"<li class='pair predictions'>(.*?)</li>", near)).count(">zz_near_copy</a>") == 4
    shares = [float(x) for x in re.findall(r"predictions</b>: ([\d.]+)% the same", overview)]
    assert shares == sorted(shares, reverse=True) and shares[0] == 100.0 and 95 < shares[-1] < 100
    # never a penalty: the copier's score is the original's
    rows = {r["student"]: r for r in grades(graded)}
    assert rows["zz_copier"]["score"] == rows["zz_original"]["score"]


@pytest.mark.slow
def test_independent_predictions_are_not_flagged(graded):
    for student in ("zz_honest_1", "zz_honest_2", "zz_honest_3"):
        assert flags(graded, student, "predictions") == {}


@pytest.mark.slow
def test_the_same_recorded_weights_are_flagged(graded):
    assert set(flags(graded, "zz_honest_1", "weights")) == {"zz_honest_2"}
    assert set(flags(graded, "zz_honest_2", "weights")) == {"zz_honest_1"}
    assert flags(graded, "zz_honest_3", "weights") == {}
    assert SHA_A[:16] in flags(graded, "zz_honest_1", "weights")["zz_honest_2"]


@pytest.mark.slow
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
    assert (shard / pair_href("zz_copier", "zz_original")).is_file()
    assert (shard / "index.html").read_text(encoding="utf-8").count("<li class='pair predictions'>") == 3 * 2


@pytest.mark.slow
def test_summarize_takes_an_earlier_versions_note_out_of_a_feedback_page(graded, tmp_path):
    """Pages written before flags were kept private carry a note naming classmates: gone after summarize."""
    shard = tmp_path / "shard"
    shutil.copytree(graded, shard)
    page = shard / "feedback" / "zz_copier.html"
    clean = page.read_text(encoding="utf-8")
    old = clean.replace("</body>", f"{BEGIN}<h2>For review</h2><ul><li>with <b>zz_original</b></li></ul>{END}\n</body>")
    page.write_text(old, encoding="utf-8")
    stale = shard / FOLDER / "zz_gone--zz_left.html"  # a pair an earlier run flagged, no longer flagged
    stale.write_text("old", encoding="utf-8")
    assert main(["summarize", str(shard)]) == 0
    assert page.read_text(encoding="utf-8") == clean
    assert not stale.exists()


# ----------------------------------------------------------------------------------- privacy
FLAG_WORDS = ("integrity", "For review", "not a penalty", "similarit", "classmate", "flagged with", "maps identical",
              "sampled pixels", "syntax nodes", "weights' SHA-256", "side by side")
GRADER_WORDS = {"reference"}  # a catalogue student, and the grader's word for the solution ("matches the reference")


def leaks(text: str, student: str, everyone: list[str], evidence: list[str]) -> list[str]:
    """What of the class's flags a text ``student`` receives gives away: another student's name (a whole
    word; a name that is also a word of the grader's messages, as an element's whole text), a flag's
    words or evidence."""
    found = []
    for other in everyone:
        pattern = f">{re.escape(other)}<" if other in GRADER_WORDS else rf"(?<![\w-]){re.escape(other)}(?![\w-])"
        if other != student and re.search(pattern, text):
            found.append(other)
    return found + [w for w in (*FLAG_WORDS, *evidence) if w in text]


@pytest.mark.slow
def test_nothing_a_student_receives_names_a_classmate_or_says_a_flag_exists(graded):
    reports, _ = read_reports(graded)
    everyone = [r.student for r in reports]
    evidence = sorted({f.evidence for r in reports for f in r.integrity or []})
    flagged = [r for r in reports if r.integrity]
    assert {"zz_copier", "zz_original", "zz_near_copy", "zz_honest_1", "zz_honest_2"} <= {r.student for r in flagged}
    for r in reports:
        received = {  # the feedback page; what Gradescope shows and what nbgrader writes into the test cells
            "feedback page": (graded / "feedback" / f"{r.student}.html").read_text(encoding="utf-8"),
            "Gradescope results.json": json.dumps(gradescope_results(r, 1.0), ensure_ascii=False),
            "nbgrader verdicts": "".join(verdict_output(c).text for c in r.checks)}
        for what, text in received.items():
            assert not leaks(text, r.student, everyone, evidence), f"{r.student}'s {what}: {leaks(text, r.student, everyone, evidence)}"
    # the instructor has them all: the record, grades.csv's review column (no names), the pair pages
    rows = {row["student"]: row["review"] for row in grades(graded)}
    assert all("integrity: flagged with" in rows[r.student] for r in flagged)
    assert rows["zz_copier"].count("integrity") == 1 and "zz_" not in rows["zz_copier"]
    for r in flagged:
        for f in r.integrity:
            page = (graded / pair_href(r.student, f.other)).read_text(encoding="utf-8")
            assert f"href='../../feedback/{r.student}.html'>{r.student}</a>" in page
            assert f"href='../../feedback/{f.other}.html'>{f.other}</a>" in page
            assert html.escape(f.evidence) in page


@pytest.mark.slow
def test_a_pair_page_shows_both_students_evidence_side_by_side(graded):
    page = (graded / FOLDER / "zz_copier--zz_original.html").read_text(encoding="utf-8")
    assert "Instructor-only" in page and "8 of 8 maps identical" in page
    # each student's other pairs: the near copy is flagged with both
    assert "<a href='zz_copier--zz_near_copy.html'>zz_near_copy</a>" in page
    assert "<a href='zz_near_copy--zz_original.html'>zz_near_copy</a>" in page
    assert "<script" not in page and "http" not in page


@pytest.mark.parametrize("names", [("a", "b"), ("../../x", "y"), ("a--b", "c"), ("a", "b--c"), (".hidden", "<b>"),
                                   ("josé", "é" * 300)])
def test_a_pair_pages_file_name_stays_in_its_folder_and_is_the_pairs_alone(names, tmp_path):
    stem = pair_stem(*names)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}", stem)  # no '/', never hidden, not too long
    others = {pair_stem("a", "b"), pair_stem("../../x", "y"), pair_stem("a--b", "c"), pair_stem("a", "b--c")} - {stem}
    assert stem not in others
    assert pair_href(*names) == pair_href(*reversed(names))


def test_gradescope_results_of_a_flagged_report_name_no_one(tmp_path):
    """The smallest case: a report with a flag, as Gradescope shows it."""
    report = Report("alice", "alice.ipynb", integrity=[IntegrityFlag("code", "bob", "the same code: 100% of 800")])
    text = json.dumps(gradescope_results(report, 1.0))
    assert "bob" not in text and "100% of 800" not in text and "integrity" not in text.lower()


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


def test_pair_pages_of_odd_names_stay_in_their_folder_escaped(tmp_path):
    """Names from the disk under the C locale (surrogates), a formula, markup: each pair's page is
    written whole inside instructor-only/integrity/, the names escaped, the links percent-encoded."""
    names = ["jos\udcc3\udca9", "=HYPERLINK(1+1)", "<script>alert(1)</script>", "../../etc"]
    reports = [Report(n, f"{i}.py", integrity=[IntegrityFlag("code", o, "100% of 800 syntax nodes")
                                                for o in names if o != n]) for i, n in enumerate(names)]
    pages = write_pair_pages(tmp_path, reports)
    assert len(pages) == 6 and all(p.parent == tmp_path / FOLDER for p in pages)
    assert sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == sorted(p.name for p in pages)
    text = "".join(p.read_bytes().decode("utf-8") for p in pages)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "href='../../feedback/jos%C3%A9.html'>josé</a>" in text
    assert write_pair_pages(tmp_path, [Report(n, "x") for n in names]) == []  # no flags any more:
    assert not list((tmp_path / FOLDER).iterdir())  # every page removed


# ----------------------------------------------------------------------------------- who needs the instructor
def section(page: str, cls: str) -> str:
    """The text of the overview's element of class ``cls`` (a list or its 'nothing here' line)."""
    return re.search(rf"<(ul|p) class='{cls}'>(.*?)</\1>", page, re.S).group(2)


def linked(text: str) -> set[str]:
    return set(re.findall(r"<a href='feedback/[^']+'>([^<]+)</a>", text))


@pytest.mark.slow
def test_the_overviews_sections_agree_with_each_other_and_grades_csv(graded):
    """An empty notebook (with a smoke run's predictions), the untouched release, a copy and a near copy:
    each section names exactly the students grades.csv's numbers and review column imply."""
    page = (graded / "index.html").read_text(encoding="utf-8")
    rows = {r["student"]: r for r in grades(graded)}
    points = {i.name: i.points for i in RUBRIC}
    # not graded: the empty notebook, with why; the mIoU items every student was graded on are not 'the run's'
    not_graded = section(page, "not-graded")
    assert linked(not_graded) == {"zz_empty"} and "is not a valid notebook" in not_graded
    assert all(rows["zz_empty"][i] in ("0", "") for i in points)
    # near zero: the rows whose score is at most a tenth of their graded points (cells not empty)
    graded_max = {s: sum(p for i, p in points.items() if r[i] != "") for s, r in rows.items()}
    low = {s for s, r in rows.items() if int(r["score"]) <= 0.1 * graded_max[s]}
    assert linked(section(page, "near-zero")) == low == {"zz_empty", "zz_untouched"}
    assert "raises NotImplementedError" in section(page, "near-zero")
    # flagged for review: the rows whose review names an item (the smoke run's predictions)
    flagged = section(page, "flagged")
    assert linked(flagged) == {s for s, r in rows.items() if "_miou: " in r["review"]} == {"zz_empty"}
    assert "smoke run" in flagged
    # integrity: the students in pairs are the rows whose review says so
    pairs = page.split("<h3>Integrity")[1].split("<h3>")[0]
    assert linked(pairs) == {s for s, r in rows.items() if "integrity" in r["review"]}
    assert "None scored yet" in section(page, "unscored")  # no written answers imported
    # every student: one row each, the CSV's score as the total, lowest first
    table = page.split("<table class='students'>")[1].split("</table>")[0]
    shown = re.findall(r"<tr><td><a href='feedback/[^']+'>([^<]+)</a>.*?<td class='total'>([\d.]+) of (\d+)</td>", table)
    assert {s for s, _, _ in shown} == set(rows) and len(shown) == len(rows)
    assert all(float(t) == int(rows[s]["score"]) and int(n) == graded_max[s] for s, t, n in shown)
    assert [float(t) for _, t, _ in shown] == sorted(float(t) for _, t, _ in shown)
    # the costliest diagnoses: a whole-submission failure once, under its cause; at most ten rows, the rest folded
    top = page.split("<table class='diagnoses'>")[1].split("</table>")[0]
    every = "".join(page.split("<table class='diagnoses")[1:])
    for student in ("zz_empty", "zz_untouched"):
        assert every.count(f">{student}</a>") == 1
    whole = [row for row in every.split("<tr>") if "<code>the whole submission</code>" in row]
    assert any("raises NotImplementedError" in row and ">zz_untouched<" in row for row in whole)
    assert top.count("<tr>") - 1 <= 10


@pytest.mark.slow
def test_the_overview_shows_the_classes_predictions_against_the_thresholds(graded):
    page = (graded / "index.html").read_text(encoding="utf-8")
    reports, _ = read_reports(graded)
    for model, title in (("fcn32s", "FCN-32s"), ("fcn8s", "FCN-8s")):
        scored = [r for r in reports if model in (r.metrics or {})]
        chart = page.split(f"aria-label='{title} test mIoU'>")[1].split("</svg>")[0]
        assert sum(int(n) for n in re.findall(r": (\d+) students</title>", chart)) == len(scored) == 6
        assert "class='threshold'" in chart
        assert f"aria-label='{title} IoU per class across the class'" in page


@pytest.mark.slow
def test_a_feedback_page_with_predictions_has_three_captioned_triptychs_the_legend_and_the_median(graded):
    from PIL import Image
    from fcnkit.metrics import confusion, scores
    from fcnkit.spec import PALETTE
    page = (graded / "feedback" / "zz_honest_1.html").read_text(encoding="utf-8")
    assert len(page.encode("utf-8")) < 2**20
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    # the best, median and worst test image by its own mIoU, computed here from the maps handed in
    maps = noisy_labels(0.4, seed=1)
    own = sorted((scores(confusion(maps[j.stem], load_label(j, 0.5), 12))["mean_iou"], j.stem)
                 for j in cmp_splits(SAMPLE_ROOT)["test"])
    expected = [own[-1], own[(len(own) - 1) // 2], own[0]]
    captions = re.findall(r"<figcaption class='examples'>(.*?)</figcaption>", page)
    assert len(captions) == 2  # one per model
    for which, (iou, image_id) in zip(("best", "median", "worst"), expected):
        assert f"{which}: <b>{image_id}</b>, IoU {iou:.2f}" in captions[0]
    # the triptychs' picture: three rows of image | truth | prediction, and the legend of every class's colour
    src = re.search(r"alt='FCN-32s: image, truth and prediction' src='data:image/png;base64,([^']+)'", page).group(1)
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB"))
    assert picture.shape[0] < picture.shape[1]  # three rows of three side by side, not a column
    legend = picture[:, int(picture.shape[1] * 0.82):].reshape(-1, 3)  # right of the three columns
    assert all((legend == colour).all(1).any() for colour in PALETTE)
    # the bars with the class's median (once the class was graded) and the threshold
    assert page.count("the black ticks: the class's median") == 2 and "the dashed red line: the mIoU threshold" in page


def test_a_layer_named_with_markup_reaches_the_overview_as_text(tmp_path):
    """A student's own layer name becomes a diagnosis's subject (here: the two maps forward failed to add), which
    the overview shows: as text, never as markup. The layer is registered under a name PyTorch allows."""
    from autograder.catalogue import mutate
    from autograder.judging import CheckFailed, Context, judgement_of, observe_in_process
    from autograder.reports.overview import overview_html
    from autograder.results import CheckResult, Status
    from autograder.rubric import ITEMS
    from autograder.submission import extract
    from fcnkit._grading.extract import run_definitions
    name = "<b onmouseover=alert(1)>"
    source = mutate([("self.score_pool4 = nn.Conv2d(512, n_class, 1)",
                      f"self.add_module({name!r}, nn.Conv2d(512, n_class, 1))"),
                     ('score_pool4 = self.score_pool4(features["pool4"])',
                      f'score_pool4 = getattr(self, {name!r})(features["pool4"])'),
                     ("score_pool4[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]", "score_pool4[:, :, 5:, 5:]")])
    (tmp_path / "s.py").write_text(source)
    namespace = {"__name__": "submission"}
    assert run_definitions([vars(c) for c in extract(tmp_path / "s.py").chunks], namespace) == []
    item, context = ITEMS["fcn8s_equivalence"], Context(seed=7)
    with pytest.raises(CheckFailed) as failed:
        judgement_of(item.name)(observe_in_process(item, namespace, context), context)
    assert failed.value.diagnosis.code == "forward_combines" and name in failed.value.diagnosis.subject
    check = CheckResult(item.name, item.title, item.model, item.points, 0, Status.FAILED, str(failed.value),
                        failed.value.diagnosis)
    page = overview_html([Report("mallory", "s.py", checks=[check])])
    assert name not in page and html.escape(name, quote=True) in page


def test_a_submission_failing_as_a_whole_is_one_diagnosis_and_the_eleventh_is_folded():
    """The smallest case without grading: the untouched release's checks (one diagnosis, said per model)
    count once; twelve other causes show ten rows and fold the rest."""
    from autograder.reports.diagnoses import WHOLE, diagnoses
    from autograder.reports.overview import overview_html
    from autograder.results import CheckResult, Status
    from fcnkit._grading.diagnoses import Diagnosis

    def check(item, passed, message, diagnosis):
        return CheckResult(item.name, item.title, item.model, item.points, item.points if passed else 0,
                           Status.PASSED if passed else Status.FAILED, message, None if passed else diagnosis)
    untouched = Report("release", "r.ipynb", checks=[check(i, False, f"{'FCN8s' if i.model == 'fcn8s' else 'FCN32s'}"
                                                                     f"(n_class=12) raised NotImplementedError.",
                                                           Diagnosis("construction_raises", "NotImplementedError"))
                                                     for i in RUBRIC])
    others = [Report(f"s{n:02d}", "s.py", checks=[check(i, i is not RUBRIC[0], f"layer {n} is wrong",
                                                        Diagnosis("wrong_layer", f"layer{n}")) for i in RUBRIC])
              for n in range(12)]
    found = diagnoses([untouched, *others])
    assert [(d.item, d.students, d.lost) for d in found if d.item == WHOLE] == [
        (WHOLE, ["release"], sum(i.points for i in RUBRIC))]
    assert sum("release" in d.students for d in found) == 1
    page = overview_html([untouched, *others])
    top, rest = page.split("<table class='diagnoses'>")[1].split("<details><summary>3 more diagnoses</summary>")
    assert top.split("</table>")[0].count("<tr>") == 1 + 10 and rest.split("</table>")[0].count("<tr>") == 1 + 3
    assert linked(section(page, "near-zero")) == {"release"} and "Every student's every item was graded" in page


def test_what_no_one_was_graded_on_is_the_runs_line_not_a_line_per_student():
    """A run without trained results and one submission the grader could not read: the unreadable one is
    named with its reason; the mIoU items no one was graded on are one line, not every student's."""
    from autograder.reports.attention import not_graded_students as not_graded
    from autograder.results import CheckResult, Status
    ok = [Report(s, "x", checks=[CheckResult(i.name, i.title, i.model, i.points, 0 if i.needs_weights else i.points,
                                             Status.NOT_GRADED if i.needs_weights else Status.PASSED,
                                             "not graded: no trained results given.") for i in RUBRIC])
          for s in ("a", "b")]
    students, run = not_graded([*ok, Report("bad", "y", not_graded="the file is not UTF-8")])
    assert students == {"the file is not UTF-8": ["bad"]}
    assert run == {"no trained results given.": [i.name for i in RUBRIC if i.needs_weights]}
