"""Written answers graded one question across the class: answers found in notebooks of every shape,
pages with the key, the student's own numbers, hints and near-duplicate flags, scores saved by a real
(headless) browser, and an import that is checked whole, idempotent, and reaches every report."""
import csv
import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import nbformat
import pytest

from autograder.__main__ import main
from autograder.answers import SOURCE, AnswersError, collect, import_scores, questions_from
from autograder.pipeline import find_submissions
from autograder.rubric import RUBRIC

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "notebooks" / "release" / "fcn_segmentation" / "fcn_segmentation.ipynb"
ALICE_Q1 = ("The pretrained model is far better: VGG-16 has 134 M parameters and only 500 training images, so from "
            "scratch it overfits and predicts the dominant classes.")


def notebook(folder: Path, cells, metrics=None) -> None:
    folder.mkdir(parents=True)
    nbformat.write(cells if isinstance(cells, nbformat.NotebookNode) else nbformat.v4.new_notebook(cells=cells),
                   folder / "fcn_segmentation.ipynb")
    if metrics:
        (folder / "outputs").mkdir()
        (folder / "outputs" / "metrics.json").write_text(json.dumps({"mode": "full", "test": metrics}))


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    """Five students, five shapes: our release filled in (with its metrics), "Your Answer:" markdown
    cells, answers in code comments, the untouched release, and a copy of the first."""
    root = tmp_path_factory.mktemp("class")
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    release = nbformat.read(RELEASE, as_version=4)
    for cell in release.cells:
        if cell.get("id") == "question1":
            cell.source = f"**Your answer:**\n\n{ALICE_Q1}"
        if cell.get("id") == "question2":
            cell.source = "**Your answer:**\n\nSills and windows gain most: pool3 keeps finer spatial detail."
    per_class = [0.5] * 12
    notebook(root / "alice" / "hw", release, {"fcn32s_scratch": {"mean_iou": 0.061},
                                              "fcn32s": {"mean_iou": 0.47, "per_class_iou": per_class},
                                              "fcn8s": {"mean_iou": 0.5, "per_class_iou": [0.6] * 12}})
    notebook(root / "bob" / "hw", [md("## Questions\n\n**Question 1.** Compare scratch and ImageNet."),
                                   md("Your Answer: ImageNet features transfer; scratch overfits."),
                                   md("**Question 2.** Which classes gain?"),
                                   md("Your Answer: thin classes such as sill and molding.")])
    notebook(root / "carol" / "hw", [md("Question 1: why does ImageNet help?"),
                                     code("#Pretrained helps a lot because the features are generic\n"
                                          "#and the dataset is small\nx = 1"),
                                     md("Question 2: the skips?"), code("# FCN-8s sharpens window boundaries")])
    shutil.copytree(root / "alice", root / "eve")
    (root / "dave" / "hw").mkdir(parents=True)
    shutil.copy(RELEASE, root / "dave" / "hw" / "fcn_segmentation.ipynb")
    return root


def test_answers_are_found_in_every_shape(klass):
    questions = questions_from(SOURCE)
    assert [(q.id, q.points) for q in questions] == [("question1", 15), ("question2", 15)]
    assert "0.06 vs 0.48" in questions[0].key and "overfitting" in questions[0].terms
    found = {q: {a.student: a for a in answers} for q, answers in collect(find_submissions(klass), questions).items()}
    q1, q2 = found["question1"], found["question2"]
    assert q1["alice"].text == ALICE_Q1 and q1["eve"].text == ALICE_Q1
    assert q1["bob"].text == "ImageNet features transfer; scratch overfits."
    assert q1["carol"].text == "Pretrained helps a lot because the features are generic\nand the dataset is small"
    assert q1["carol"].comments and not q1["bob"].comments and not q1["alice"].comments
    assert q2["carol"].text == "FCN-8s sharpens window boundaries" and q2["bob"].text == "thin classes such as sill and molding."
    assert q1["dave"].text == "" and q2["dave"].text == ""  # the untouched release: blank
    assert q1["alice"].numbers == "their test mIoU: FCN-32s from scratch 0.061, from ImageNet 0.470"
    assert "window 0.50->0.60" in q2["alice"].numbers
    assert {"pretrained", "overfitting", "parameters"} <= set(q1["alice"].hints)
    assert q1["alice"].duplicates == ["eve"] and q1["eve"].duplicates == ["alice"] and not q1["bob"].duplicates


def test_pages_show_key_numbers_and_blank_answers_apart(klass, tmp_path):
    assert main(["answers", str(klass), "--out", str(tmp_path / "pages")]) == 0
    page = (tmp_path / "pages" / "question1.html").read_text()
    assert "Key and rubric" in page and "0.06 vs 0.48" in page and "from ImageNet 0.470" in page
    assert "near-duplicate of eve" in page and "4 answers, 1 blank" in page
    assert page.index("No answer (1)") < page.index("data-student='dave'")
    assert main(["answers", str(klass), "--out", str(tmp_path / "blind"), "--anonymous"]) == 0
    blind = (tmp_path / "blind" / "question1.html").read_text()
    assert "alice" not in blind and "data-student='student 01'" in blind
    assert set(json.loads((tmp_path / "blind" / "anonymous.json").read_text()).values()) == {
        "alice", "bob", "carol", "dave", "eve"}


@pytest.fixture(scope="module")
def graded(klass, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("graded")
    assert main(["grade", str(klass), "--out", str(out), "--jobs", "2"]) == 0
    return out


@pytest.fixture()
def reports(graded, tmp_path) -> Path:
    """A fresh copy of the class's reports for each test."""
    return Path(shutil.copytree(graded, tmp_path / "reports"))


def write_csv(path: Path, rows: list[list[str]], header=("student", "question", "score", "comment")) -> Path:
    import csv
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([list(header), *rows])
    return path


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_import_reaches_every_report_and_is_idempotent(reports, tmp_path):
    scores = write_csv(tmp_path / "q1.csv", [["alice", "question1", "12.5", "good; mention pixel accuracy"],
                                             ["bob", "question1", "9", ""]])
    assert main(["answers", "--import", str(scores), "--reports", str(reports)]) == 0
    first = snapshot(reports)
    rows = (reports / "grades.csv").read_text().splitlines()
    header = rows[0].split(",")
    alice = next(r for r in rows if r.startswith("alice,")).split(",")
    assert alice[header.index("question1")] == "12.5" and next(r for r in rows if r.startswith("bob,")).split(",")[
        header.index("question1")] == "9"
    assert float(alice[header.index("total")]) == float(alice[header.index("score")]) + 12.5
    report = json.loads((reports / "alice.json").read_text())
    assert report["manual"]["question1"] == {"title": "Question 1 (graded by hand)", "score": 12.5, "max_score": 15,
                                             "comment": "good; mention pixel accuracy"}
    page = (reports / "feedback" / "alice.html").read_text()
    assert "Written answers (graded by hand)" in page and "12.5 / 15" in page and "mention pixel accuracy" in page
    gradescope = json.loads((reports / "gradescope" / "alice" / "results.json").read_text())
    assert gradescope["tests"][-1]["name"] == "Question 1 (graded by hand)" and gradescope["tests"][-1]["score"] == 12.5
    assert gradescope["score"] == report["total"]
    time.sleep(1.01)  # a clock read in any page would show: the overview once said when it was built, and flaked
    assert main(["answers", "--import", str(scores), "--reports", str(reports)]) == 0
    assert snapshot(reports) == first  # the same CSV again: nothing changes


@pytest.mark.parametrize("rows, header, message", [
    ([["mallory", "question1", "5", ""]], None, "line 3: unknown student 'mallory'"),
    ([["alice", "question1", "16", ""]], None, "line 3: score 16 is outside 0..15"),
    ([["alice", "question1", "-1", ""]], None, "outside 0..15"),
    ([["alice", "question9", "5", ""]], None, "unknown question 'question9'"),
    ([["alice", "question1", "five", ""]], None, "score 'five' is not a number"),
    ([["alice", "question1", "5"]], ("student", "question", "score"), "line 1: the columns are"),
])
def test_a_bad_csv_is_refused_whole(reports, tmp_path, capsys, rows, header, message):
    good = ["bob", "question1", "9", "fine"]
    scores = write_csv(tmp_path / "bad.csv", [good, *rows], header or ("student", "question", "score", "comment"))
    before = snapshot(reports)
    assert main(["answers", "--import", str(scores), "--reports", str(reports)]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(reports) == before  # the good line was not written either
    with pytest.raises(AnswersError, match="bad.csv"):
        import_scores([scores], reports)


def test_a_browser_saves_scores_the_import_reads(klass, reports, tmp_path):
    """Headless Chromium opens a question's page from disk, two scores and a comment are typed in,
    the page's button saves the CSV, and the import puts them into grades.csv."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    assert main(["answers", str(klass), "--out", str(tmp_path / "pages")]) == 0
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True)
        page.goto((tmp_path / "pages" / "question1.html").as_uri())
        page.fill("tr[data-student='alice'] .score", "13")
        page.fill("tr[data-student='alice'] .comment", 'names "overfitting"; no numbers')
        page.fill("tr[data-student='carol'] .score", "7.5")
        page.fill("tr[data-student='carol'] .comment", "=HYPERLINK(\"http://x\") très ≤")  # a formula, not ASCII
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        browser.close()
    assert saved.name == "scores-question1.csv"
    assert main(["answers", "--import", str(saved), "--reports", str(reports)]) == 0
    rows = {r.split(",")[0]: r.split(",") for r in (reports / "grades.csv").read_text().splitlines()}
    column = rows["student"].index("question1")
    assert rows["alice"][column] == "13" and rows["carol"][column] == "7.5"
    assert rows["dave"][column] == "0"  # a blank answer's box starts at 0
    assert json.loads((reports / "alice.json").read_text())["manual"]["question1"]["comment"] == \
        'names "overfitting"; no numbers'
    # the saved CSV shows the formula as text (a leading quote); the import takes the quote off again
    assert '"\'=HYPERLINK(""http://x"") très ≤"' in saved.read_text(encoding="utf-8")
    assert json.loads((reports / "carol.json").read_text(encoding="utf-8"))["manual"]["question1"]["comment"] == \
        '=HYPERLINK("http://x") très ≤'


def _views(out: Path, student: str) -> tuple[str, dict, str, dict]:
    """What the class's files say of a student: grades.csv's row, the report, the page, Gradescope's results."""
    import csv
    row = next(r for r in csv.DictReader(open(out / "grades.csv", encoding="utf-8")) if r["student"] == student)
    return (row, json.loads((out / f"{student}.json").read_text(encoding="utf-8")),
            (out / "feedback" / f"{student}.html").read_text(encoding="utf-8"),
            json.loads((out / "gradescope" / student / "results.json").read_text(encoding="utf-8")))


@pytest.mark.slow
def test_a_regrade_keeps_the_imported_answers(tmp_path):
    """Scores imported for two students survive a resumed run after one submission changed, and a
    --force run: in the gradebook, grades.csv, the reports, the feedback pages, Gradescope's results
    and Canvas's import file."""
    from autograder.catalogue import REFERENCE, sources
    folder, out = tmp_path / "class", tmp_path / "out"
    for student in ("ann", "ben"):
        (folder / student).mkdir(parents=True)
        (folder / student / "fcn_segmentation.py").write_text(REFERENCE, encoding="utf-8")
    assert main(["grade", str(folder), "--out", str(out), "--seed", "3", "--jobs", "2"]) == 0
    scores = write_csv(tmp_path / "scores.csv", [["ann", "question1", "12", "clear"], ["ben", "question2", "7", "thin"]],
                       ("student", "question", "score", "comment"))
    assert main(["answers", "--import", str(scores), "--reports", str(out)]) == 0
    imported = re.search(r"<tr><th>answers imported</th><td>[^<]+</td></tr>", (out / "index.html").read_text()).group(0)
    (folder / "ben" / "fcn_segmentation.py").write_text(sources()["fcn8s_no_ceil_mode"], encoding="utf-8")
    roster = tmp_path / "roster.csv"
    for again in ([], ["--force"]):
        assert main(["grade", str(folder), "--out", str(out), "--seed", "3", "--jobs", "2", *again]) == 0
        for student, question, points, comment in (("ann", "question1", 12, "clear"), ("ben", "question2", 7, "thin")):
            row, report, page, gradescope = _views(out, student)
            assert row[question] == f"{points:g}" and float(row["total"]) == report["score"] + points, again
            assert report["manual"][question]["score"] == points and report["total"] == report["score"] + points
            assert comment in page and f"{points:g} / 15" in page
            assert gradescope["score"] == report["total"]
        assert _views(out, "ben")[1]["score"] < _views(out, "ann")[1]["score"]  # ben's change was graded
        assert imported in (out / "index.html").read_text(), again  # the overview still says when, as the import did
        roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\nAnn,1,S1,ann,A\nBen,2,S2,ben,A\n")
        assert main(["export", "canvas", str(out), "--roster", str(roster), "--out", str(tmp_path / "canvas.csv"),
                     "--missing-answers-zero"]) == 0  # ann has no question2, ben no question1
        canvas = {r["SIS Login ID"]: r for r in csv.DictReader(open(tmp_path / "canvas.csv", encoding="utf-8"))}
        assert {s: float(canvas[s]["FCN segmentation"]) for s in ("ann", "ben")} == \
            {s: _views(out, s)[1]["total"] for s in ("ann", "ben")}, again
        with sqlite3.connect(out / "gradebook.sqlite") as db:
            assert db.execute("SELECT student, question, score, comment FROM manual ORDER BY student").fetchall() == \
                [("ann", "question1", 12.0, "clear"), ("ben", "question2", 7.0, "thin")]


# ----------------------------------------------------------------------------------- rendered, inert
HOSTILE = {
    "script": "<script>window.__pwned = 1</script> **bold** stays",
    "onerror": "<img src=x onerror='window.__pwned = 2'> and ![img](x.png)",
    "link": "[click me](javascript:window.__pwned=3) <javascript:window.__pwned=4> [fine](https://example.org)",
    "math_text": r"$\text{<script>window.__pwned = 5</script>}$ $\text{<img src=x onerror='window.__pwned=6'>}$",
    "deep_list": "- " * 10_000 + "x",
    "deep_quote": ">" * 10_000 + " x",
    "unbalanced": r"it costs $5, and $x = \frac{a}{b and $$ never closes",
}
FORMULA = r"## 6. Questions" "\n\n" r"**Question 1**: IoU is $\frac{|A \cap B|}{|A \cup B|}$ and $$\sum_i x_i$$"


def test_markdown_and_formulas_render_and_depth_is_shown_as_text():
    from autograder.reports.markup import render
    formula = render(FORMULA)
    assert "<h2>6. Questions</h2>" in formula and "<strong>Question 1</strong>" in formula
    assert '<math display="inline">' in formula and "<mfrac>" in formula and '<math display="block">' in formula
    for name in ("deep_list", "deep_quote"):
        shown = render(HOSTILE[name])
        assert "nested too deeply" in shown and "<li>" not in shown and "<blockquote>" not in shown
    assert render(HOSTILE["unbalanced"]).count("$") == 4 and "<math" not in render(HOSTILE["unbalanced"])
    assert "<mtext>&lt;script&gt;window.__pwned&nbsp;=&nbsp;5" in render(HOSTILE["math_text"])  # shown as text
    assert "&lt;script&gt;" in render(HOSTILE["script"]) and "<strong>bold</strong>" in render(HOSTILE["script"])
    link = render(HOSTILE["link"])
    assert "javascript:" not in link.replace("[click me](javascript:", "").replace("&lt;javascript:", "")
    assert '<a href="https://example.org"' in link


def test_feedback_page_total_says_of_what(tmp_path):
    from autograder.reports.html import total_line
    from autograder.results import ManualScore
    from autograder.tests.test_canvas import report
    r = report("ada", {"fcn32s_vgg"})
    auto = sum(item.points for item in RUBRIC)  # the rubric's points (70 as handed out): a new item changes it
    assert total_line(r, {}) == (f"<p class='total'>Total: <b>{r.score} of {auto}</b> graded so far; not graded "
                                 "yet: the written answers (graded by hand).</p>")
    r.manual = {"question1": ManualScore("Question 1 (graded by hand)", 12, 15)}
    line = total_line(r, {"question1": 15, "question2": 15})
    assert f"Total: <b>{r.score + 12} of {auto + 15}</b> graded so far" in line and "question2: 15 points" in line
    assert f"out of {auto + 30}" in line
    r.manual["question2"] = ManualScore("Question 2 (graded by hand)", 15, 15)
    assert total_line(r, {"question1": 15, "question2": 15}) == \
        f"<p class='total'>Total: <b>{r.score + 27} of {auto + 30}</b>.</p>"


def test_hostile_answers_and_comments_are_inert_in_chromium(tmp_path):
    """The answers page and a feedback page with hostile answers and comments, opened in headless
    Chromium: no script of theirs runs, no console error, the formulas are MathML."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from autograder.answers.pages import Answer, Question, page
    from autograder.reports.html import feedback_html
    from autograder.results import ManualScore
    from autograder.tests.test_canvas import report
    answers = [Answer(name, text) for name, text in {**HOSTILE, "formula": FORMULA}.items()]
    answers.append(Answer("comments", "x = $a$ <script>window.__pwned = 7</script>", comments=True))
    names = {a.student: a.student for a in answers}
    question = Question("question1", 1, "Why? $x^2$", "the key <script>window.__pwned = 8</script>", 15)
    (tmp_path / "question1.html").write_text(page(question, answers, names), encoding="utf-8")
    student = report("ada", {"fcn32s_vgg"})
    student.manual = {"question1": ManualScore("Question 1 (graded by hand)", 9, 15, HOSTILE["onerror"] + " $x^2$"),
                      "question2": ManualScore("Question 2 (graded by hand)", 3, 15, HOSTILE["link"])}
    (tmp_path / "ada.html").write_text(feedback_html(student), encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, formulas in (("question1.html", 4), ("ada.html", 1)):
            tab = browser.new_page()
            errors = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda err: errors.append(str(err)))
            tab.goto((tmp_path / name).as_uri())
            tab.wait_for_timeout(200)
            assert tab.evaluate("window.__pwned") is None, name
            assert not errors, (name, errors)
            assert tab.locator("math").count() >= formulas and tab.locator("math mfrac, math msup").count() >= 1
            assert tab.locator("img, [onerror], a[href^='javascript']").count() == 0, name
            assert tab.locator("script").count() == (1 if name == "question1.html" else 0)  # the page's own
            if name == "question1.html":
                assert "<script>window.__pwned = 7</script>" in tab.inner_text("tr[data-student='comments']")
                assert "nested too deeply" in tab.inner_text("tr[data-student='deep_list']")
        browser.close()


def test_the_overview_shows_written_answer_scores_once_imported():
    from autograder.reports.overview import overview_html
    from autograder.results import ManualScore
    from autograder.tests.test_canvas import report
    reports = [report(name, {"fcn32s_vgg"}) for name in ("ada", "bob", "cy")]
    assert "Written answers (graded by hand)" not in overview_html(reports)
    reports[0].manual = {"question1": ManualScore("Question 1 (graded by hand)", 12, 15),
                         "question2": ManualScore("Question 2 (graded by hand)", 6, 15)}
    reports[1].manual = {"question1": ManualScore("Question 1 (graded by hand)", 9, 15)}
    page = overview_html(reports)
    assert "<td class='scored' data-question='question1'>2 of 3</td><td>10.5 of 15</td>" in page
    assert "<td class='scored' data-question='question2'>1 of 3</td><td>6.0 of 15</td>" in page
    assert "<td>6.0 of 15</td><td><a href='feedback/bob.html'>bob</a>, <a href='feedback/cy.html'>cy</a></td>" in page
    assert (f"mean total {reports[0].total:.1f} of {sum(i.points for i in RUBRIC) + 30}, written answers included "
            f"(students with every question scored: 1)") in page
    # who needs the instructor: the students with a question not scored; the table's written answers and totals
    assert ("<ul class='unscored'><li><a href='feedback/bob.html'>bob</a>: question2</li><li><a href='feedback/cy.html'>"
            "cy</a>: question1, question2</li></ul>") in page
    ada = page.split("feedback/ada.html'>ada</a></td>")[1].split("</tr>")[0]
    assert ada.endswith(f"<td>18 of 30</td><td class='total'>{reports[0].total:g} of {reports[0].graded_max_score + 30}</td>")
