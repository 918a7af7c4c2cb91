"""The assignment notebook: the release, solved, runs top to bottom in smoke mode (its mIoU cells say
BELOW THRESHOLD), the release is current and holds no solutions, and nbgrader grades the solved
release full marks (its hidden tests restored) and the untouched release 0 (totals from the rubric)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.frontends.nbgrader import run_nbgrader
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.data import SAMPLE_ROOT

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402

ASSIGNMENT = build.ASSIGNMENT
AUTO_POINTS = sum(item.points for item in RUBRIC)


@pytest.fixture(scope="module")
def notebook_env(vgg_features_file, tmp_path_factory):
    """What CI sets for the notebook: smoke mode at a quarter of the image size (the smallest scale the
    grader accepts predictions at: half the arithmetic of the default 0.5), local VGG weights, and mIoU thresholds of 0 for the
    grading tests (a smoke run's weights are barely trained; the threshold logic is tested in
    autograder/tests); the smoke run itself uses the real thresholds."""
    env = {"FCNKIT_SMOKE": "1", "FCNKIT_SCALE": "0.25", "FCNKIT_VGG16_WEIGHTS": str(vgg_features_file),
           "FCNKIT_DATA": str(SAMPLE_ROOT),
           "FCNKIT_WEIGHTS": str(tmp_path_factory.mktemp("weights")),
           "FCNKIT_MIOU_THRESHOLDS": "fcn32s=0,fcn8s=0", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def execute(path: Path, **kwargs):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            **kwargs)
    try:
        client.execute()
    finally:
        nbformat.write(nb, path)
    return nb


def solved_release(folder: Path) -> Path:
    """The release as a student who solved it hands it in: the source's solutions in its answer cells
    (the code, and the written answers: the instructor's key)."""
    solutions = {c.id: c.source for c in nbformat.read(build.SOURCE, as_version=4).cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(build.RELEASE, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solutions[cell.id]
    nbformat.write(nb, folder / build.RELEASE.name)
    return folder / build.RELEASE.name


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, notebook_env):
    """The solved release run top to bottom in smoke mode, with the grader's own mIoU thresholds (as a
    student runs it: no FCNKIT_MIOU_THRESHOLDS)."""
    work = tmp_path_factory.mktemp("smoke")
    thresholds = os.environ.pop("FCNKIT_MIOU_THRESHOLDS")
    try:
        nb = execute(solved_release(work))
    finally:
        os.environ["FCNKIT_MIOU_THRESHOLDS"] = thresholds
    return work, nb


def outputs_of(nb, cell_id: str) -> str:
    [cell] = [c for c in nb.cells if c.id == cell_id]
    return "".join(o.get("text", "") for o in cell.outputs)


@pytest.mark.slow
def test_solved_release_runs_top_to_bottom_in_smoke_mode(smoke_run, notebook_env):
    work, nb = smoke_run
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells)
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in code_cells for o in c.outputs)
    structural = [item for item in RUBRIC if not item.needs_weights]
    assert text.count("PASS ") == len(structural)  # fcnkit's check of each (the grader's are hidden in the release)
    figures = sum("image/png" in o.get("data", {}) for c in code_cells for o in c.outputs)
    assert figures >= 6  # samples, bilinear kernels, two training curves, predictions, per-class IoU
    metrics = json.loads((work / "outputs" / "metrics.json").read_text())
    assert metrics["mode"] == "smoke" and set(metrics["test"]) == {"fcn32s_scratch", "fcn32s", "fcn8s"}
    weights = Path(notebook_env["FCNKIT_WEIGHTS"])
    assert (weights / "fcn32s.pt").stat().st_size > 500e6 and (weights / "fcn8s.pt").is_file()
    assert sorted(p.name for p in (work / "outputs").iterdir()) == [
        "fcn32s_predictions.json", "fcn32s_predictions.npz", "fcn8s_predictions.json", "fcn8s_predictions.npz",
        "metrics.json"]


@pytest.mark.slow
def test_smoke_predictions_are_below_threshold_and_named_a_smoke_run(smoke_run):
    """The mIoU cells score the saved predictions against the grader's thresholds (0.30 / 0.40): a
    smoke run's are far below, and the cell says so, with the number the training cell printed."""
    work, nb = smoke_run
    n_test = len(json.loads((work / "outputs" / "fcn32s_predictions.json").read_text())["image_ids"])
    for kind, threshold, training_cell in (("fcn32s", "0.30", "cell-18"), ("fcn8s", "0.40", "cell-28")):
        verdict = outputs_of(nb, f"{kind}_miou")
        miou = json.loads((work / "outputs" / "metrics.json").read_text())["test"][kind]["mean_iou"]
        assert verdict.startswith(f"BELOW THRESHOLD {kind}_miou: test mIoU {miou:.3f} < {threshold} (the threshold) "
                                  f"on {n_test} test images"), verdict
        assert "This is a smoke run (FCNKIT_SMOKE=1" in verdict
        assert f"test mIoU {miou:.3f} on {n_test} test images" in outputs_of(nb, training_cell)  # one number
        assert json.loads((work / "outputs" / f"{kind}_predictions.json").read_text())["smoke"] is True


@pytest.mark.slow
def test_the_offsets_cells_compute_the_crops_from_the_students_layers(smoke_run):
    _, nb = smoke_run
    assert "{'upscore': 19.0}" in outputs_of(nb, "fcn32s_offsets")
    assert "pool4    stride  16: index 0 is centred on input pixel -91.5" in outputs_of(nb, "fcn32s_offsets")
    assert "{'score_pool4': 5.0, 'score_pool3': 9.0, 'upscore8': 31.0}" in outputs_of(nb, "fcn8s_offsets")


@pytest.mark.slow
def test_results_cell_names_the_model_that_has_no_results(smoke_run, tmp_path, notebook_env):
    """FCN-32s's training failed (here: never ran) and FCN-8s's worked (the smoke run's predictions, an
    untrained FCN8s): the results cell shows FCN-8s and says what to run for FCN-32s, instead of
    raising KeyError: 'fcn32s'."""
    work, nb = smoke_run
    shutil.copytree(work / "outputs", tmp_path / "outputs")
    cells = {c.id: c.source for c in nb.cells}
    sources = [cells[i] for i in ("cell-01", "cell-04", "vgg16_layers", "fcn8s_solution", "cell-17")]
    sources += ['import types\nRESULTS = {"fcn8s": vars(score_saved(OUTPUTS, "fcn8s", DATA_ROOT))}\n'
                'run8 = types.SimpleNamespace(model=FCN8s(n_class=N_CLASS))', cells["cell-31"]]
    path = tmp_path / "partial.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    results = execute(path).cells[-1]
    text = "".join(o.get("text", "") for o in results.outputs)
    assert "no results for FCN-32s: its training did not run or failed. Run `run32 = train_from_imagenet(" in text
    assert "no results for FCN-8s" not in text and "fcn8s           test pixel accuracy" in text
    assert sum("image/png" in o.get("data", {}) for o in results.outputs) == 2  # FCN-8s's predictions and IoU


def grade_cells(nb):
    return [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"].get("points"), c.cell_type,
             c.metadata["nbgrader"].get("locked"))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def test_release_is_current_and_clean():
    """Also: the build works without an activated environment (nbgrader runs console scripts of its own,
    alembic: found beside the interpreter, not on PATH)."""
    result = run_build("--check", env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")})
    assert result.returncode == 0, result.stdout + result.stderr
    source = nbformat.read(build.SOURCE, as_version=4)
    release = nbformat.read(build.RELEASE, as_version=4)
    text = build.RELEASE.read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "instructor key", "padding=100)", "31:31 +"):
        assert marker not in text, marker
    assert grade_cells(release) == grade_cells(source)
    points = {gid: p for gid, p, kind, _ in grade_cells(release)}
    assert sum(p for gid, p in points.items() if not gid.startswith("question")) == AUTO_POINTS
    assert points["question1"] == points["question2"] == 15
    assert all(locked for _, _, kind, locked in grade_cells(release) if kind == "code")


def test_untouched_release_stops_at_first_unimplemented_part_with_clear_message(tmp_path, notebook_env):
    shutil.copy(build.RELEASE, tmp_path)
    with pytest.raises(CellExecutionError) as failure:
        execute(tmp_path / build.RELEASE.name)
    message = str(failure.value)
    assert "CheckFailed" in message and "raised NotImplementedError" in message and "YOUR CODE HERE" in message
    nb = nbformat.read(tmp_path / build.RELEASE.name, as_version=4)
    failed = [c for c in nb.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert failed[0].metadata["nbgrader"]["grade_id"] == "fcn32s_vgg_layers"


def nbgrader(course: Path, *args):
    run_nbgrader(course, *args, check=True)


def course_copy(tmp_path) -> Path:
    """A course folder like notebooks/: the committed source and release, and nbgrader's config."""
    course = tmp_path / "course"
    for part in ("source", "release"):
        shutil.copytree(REPO / "notebooks" / part, course / part)
    shutil.copy(REPO / "notebooks" / "nbgrader_config.py", course)
    return course


def run_build(*args, env=None):
    return subprocess.run([sys.executable, str(REPO / "notebooks" / "build.py"), *map(str, args)],
                          capture_output=True, text=True, env=env)


def by_id(nb) -> dict:
    return {c.id: c for c in nb.cells}


@pytest.mark.slow
def test_an_edit_made_in_jupyter_reaches_the_release(tmp_path):
    """The source notebook is the source of truth: a changed paragraph (with LaTeX) and a question
    worth other points, edited as Jupyter would save them, reach the release; the generated cells
    (solutions from the reference, tests and point totals from the rubric) stay generated."""
    course = course_copy(tmp_path)
    source = course / "source" / ASSIGNMENT / build.SOURCE.name
    nb = nbformat.read(source, as_version=4)
    cells = by_id(nb)
    cells["fcn8s_text"].source += "\n\nThe output is $C \\times H \\times W$."
    cells["question1_text"].source = cells["question1_text"].source.replace("(15 points)", "(20 points)")
    cells["question1"].metadata["nbgrader"]["points"] = 20
    cells["cell-01"].outputs = [nbformat.v4.new_output("stream", text="left over from a run\n")]
    cells["cell-01"].metadata["collapsed"] = True
    nbformat.write(nb, source)
    result = run_build("--release", "--course", course)
    assert result.returncode == 0, result.stderr
    assert run_build("--check", "--course", course).returncode == 0
    built = by_id(nbformat.read(source, as_version=4))
    release = by_id(nbformat.read(course / "release" / ASSIGNMENT / build.SOURCE.name, as_version=4))
    assert "$C \\times H \\times W$" in release["fcn8s_text"].source
    assert release["question1"].metadata["nbgrader"]["points"] == 20
    assert release["points"].source.startswith("**Points: 105.**") and "questions, 35" in release["points"].source
    assert built["cell-01"].outputs == [] and "collapsed" not in built["cell-01"].metadata
    reference = (REPO / "autograder" / "reference" / "models.py").read_text()
    for grade_id, blocks in build.SOLUTIONS.items():
        assert built[grade_id].source == "\n\n\n".join(build.reference_block(b, reference) for b in blocks)
    for item in RUBRIC:
        assert built[item.name].metadata["nbgrader"]["points"] == item.points
        assert built[item.name].source.startswith(f"# {item.title} ({item.points} points)")


def test_disagreeing_points_and_a_missing_test_cell(tmp_path):
    course = course_copy(tmp_path)
    source = course / "source" / ASSIGNMENT / build.SOURCE.name
    nb = nbformat.read(source, as_version=4)
    by_id(nb)["question2"].metadata["nbgrader"]["points"] = 10  # the text still says 15
    nbformat.write(nb, source)
    result = run_build("--course", course)
    assert result.returncode == 2 and "says 15 points, the cell gives 10" in result.stderr
    nb.cells = [c for c in nb.cells if c.id != "fcn8s_head"]  # a rubric item without its cell
    by_id(nb)["question2"].metadata["nbgrader"]["points"] = 15
    nbformat.write(nb, source)
    result = run_build("--course", course)
    assert result.returncode == 0 and "added test cells: fcn8s_head" in result.stdout
    ids = [c.id for c in nbformat.read(source, as_version=4).cells]
    assert ids.index("fcn8s_head") == ids.index("fcn8s_miou") + 1  # after FCN-8s's last test


@pytest.mark.slow
def test_a_course_on_nbgrader_from_release_to_feedback(smoke_run, tmp_path, notebook_env):
    """The round trip of an nbgrader course, on real nbgrader, with two students: release, fetch (as a
    student), the reference solution and a smoke run's outputs, submit, collect (under nbgrader's default
    100 MB file limit, which leaves the weights behind); bob hands in the untouched release. nbgrader's own
    autograde (the hidden tests restored) scores alice full marks and bob 0; then the grader, from the
    submitted predictions, files its scores into the same gradebook; written answers; feedback."""
    from nbgrader.api import Gradebook
    from autograder.__main__ import main
    work, solved = smoke_run
    course, exchange, home = tmp_path / "course", tmp_path / "exchange", tmp_path / "alice"
    build.generate_release(course)
    build.build_wheel(course / "release" / ASSIGNMENT)
    shared = [f"--Exchange.root={exchange}", "--CourseDirectory.course_id=fcn-segmentation"]
    exchange.mkdir()
    nbgrader(course, "release_assignment", ASSIGNMENT, *shared)
    home.mkdir()
    student = [sys.executable, "-m", "nbgrader"]  # run in the student's folder, with no course of its own
    subprocess.run([*student, "fetch_assignment", ASSIGNMENT, *shared, "--log-level=WARN"], cwd=home, check=True)
    fetched = home / ASSIGNMENT
    assert (fetched / build.wheel_name()).is_file()
    nb = nbformat.read(fetched / build.SOURCE.name, as_version=4)
    answers = {c.id: c for c in solved.cells}
    for cell in nb.cells:  # the student's work: the solution and the outputs of their (smoke) run
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[cell.id].source
        if cell.cell_type == "code":
            cell.outputs = answers[cell.id].outputs
    nbformat.write(nb, fetched / build.SOURCE.name)
    shutil.copytree(work / "outputs", fetched / "outputs")  # the weights are elsewhere (FCNKIT_WEIGHTS)
    subprocess.run([*student, "submit", ASSIGNMENT, "--student=alice", *shared, "--log-level=WARN"], cwd=home,
                   check=True)  # nbgrader refuses a folder over 100 MB (max_dir_size): 2 x 540 MB would not go
    nbgrader(course, "collect", ASSIGNMENT, *shared)
    submitted = course / "submitted" / "alice" / ASSIGNMENT
    assert (submitted / "outputs" / "fcn8s_predictions.npz").is_file()
    assert sum(p.stat().st_size for p in submitted.rglob("*") if p.is_file()) < 2e6
    untouched = course / "submitted" / "bob" / ASSIGNMENT
    untouched.mkdir(parents=True)
    shutil.copy(build.RELEASE, untouched / build.SOURCE.name)
    nbgrader(course, "db", "student", "add", "bob")
    nbgrader(course, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, score in (("alice", AUTO_POINTS), ("bob", 0)):
            graded = gb.find_submission(ASSIGNMENT, student)
            assert (graded.code_score, graded.max_code_score) == (score, AUTO_POINTS), student

    reports = tmp_path / "reports"
    assert main(["grade", str(course / "submitted"), "--data", str(SAMPLE_ROOT), "--out", str(reports),
                 "--gradebook", str(course), "--jobs", "2"]) == 0
    report = json.loads((reports / "alice.json").read_text())
    miou = {c["name"]: c for c in report["checks"] if c["name"].endswith("_miou")}
    assert all(c["status"] == "passed" and "from the submitted predictions" in c["message"] for c in miou.values())
    assert report["score"] == report["graded_max_score"] == AUTO_POINTS
    assert json.loads((reports / "bob.json").read_text())["score"] == 0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        alice = gb.find_submission(ASSIGNMENT, "alice")
        assert (alice.code_score, alice.max_code_score) == (AUTO_POINTS, AUTO_POINTS)
        assert gb.find_submission(ASSIGNMENT, "bob").code_score == 0
        fcn8s_miou = gb.find_grade("fcn8s_miou", build.SOURCE.stem, ASSIGNMENT, "alice")
        assert fcn8s_miou.auto_score == ITEMS["fcn8s_miou"].points
        assert gb.find_grade("question1", build.SOURCE.stem, ASSIGNMENT, "alice").needs_manual_grade
    # the written answers, scored on their pages (a CSV per question), into the gradebook too
    scores = tmp_path / "scores-question1.csv"
    scores.write_text('student,question,score,comment\r\nalice,question1,12,"names overfitting; no numbers"\r\n')
    assert main(["answers", "--import", str(scores), "--reports", str(reports), "--gradebook", str(course)]) == 0
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("question1", build.SOURCE.stem, ASSIGNMENT, "alice")
        assert grade.manual_score == 12 and not grade.needs_manual_grade
        assert gb.find_comment("question1", build.SOURCE.stem, ASSIGNMENT, "alice").manual_comment == \
            "names overfitting; no numbers"
        assert gb.find_submission(ASSIGNMENT, "alice").score == AUTO_POINTS + 12
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    page = (course / "feedback" / "alice" / ASSIGNMENT / f"{build.SOURCE.stem}.html").read_text()
    passed = f"PASS {ITEMS['fcn8s_miou'].title}: {ITEMS['fcn8s_miou'].points} / {ITEMS['fcn8s_miou'].points}"
    assert passed.replace("'", "&#39;") in page or passed in page
    assert "names overfitting; no numbers" in page
