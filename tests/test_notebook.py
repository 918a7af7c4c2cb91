"""The assignment notebook: the release, solved, runs top to bottom in smoke mode (its mIoU cells say
BELOW THRESHOLD), the release is current and holds no solutions, and nbgrader grades the solved
release full marks (its hidden tests restored) and the untouched release 0 (totals from the rubric)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from autograder.reports.nbgrader import run_nbgrader
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
    structural = [ids.index(i.name) for i in RUBRIC if i.model == "fcn8s" and not i.needs_weights and i.name != "fcn8s_head"]
    assert ids.index("fcn8s_head") == max(structural) + 1 < ids.index("fcn8s_miou")  # among FCN-8s's structural checks


def readme_course_commands() -> tuple[str, list[str], str]:
    """The README's build command, its nbgrader course block (comments and blank lines dropped) and
    the students' comment line, as written there."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    build_line = re.search(r"^(python notebooks/build\.py --release)\s", readme, re.M).group(1)
    block = readme.split("**An nbgrader course**", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
    students = re.search(r"#\s+students: (nbgrader fetch_assignment .+?), then submit", block).group(1)
    return build_line, commands, students


def copy_working_tree(src: Path, dst: Path) -> None:
    """Copy the files git would commit from ``src`` (tracked, or untracked and not ignored) to ``dst``:
    never a virtual environment, a build or a run's outputs, which in a fresh clone set up as the README
    says hold a 6 GB ``.venv``. Without git, everything but those folders."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=src, capture_output=True)
    if listed.returncode != 0:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            ".git", ".venv", ".gpu", "__pycache__", "*.egg-info", "build", "outputs", "runs"))
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (src / name).is_file():  # a file deleted but not yet staged is listed and absent
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)


class Course:
    """The README's nbgrader course, run as written (read from the README) on a copy of the repository, up
    to ``nbgrader collect``: its build, release, and four students who fetch the release and submit.
    ann hands in the solution with a smoke run's outputs (its predictions, not its 2 x 540 MB weights:
    nbgrader's 100 MB limit), cat the untouched release, dan a notebook with a test cell pasted twice,
    eve a renamed notebook (``fcn_segmentation (1).ipynb``). ``rest`` are the commands after collect."""

    def __init__(self, root: Path, smoke_run):
        import shlex
        self.root, self.exchange = root, root / "exchange"
        build_line, commands, fetch = readme_course_commands()
        assert commands[0] == "cd notebooks" and any(c.startswith("python -m autograder grade") for c in commands)
        self.repo = root / "repo"
        copy_working_tree(REPO, self.repo)
        self.exchange.mkdir()
        self.course = self.repo / "notebooks"
        (self.course / "data").mkdir()
        (self.course / "data" / "cmp_facade").symlink_to(SAMPLE_ROOT)  # the README's data/cmp_facade
        self.env = {**os.environ, "PYTHONPATH": str(self.repo),
                    "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        self.shlex = shlex
        self.run(build_line, self.repo)
        at = commands.index(next(c for c in commands if c.startswith("nbgrader collect")))
        for command in commands[1:at]:
            self.run(command, self.course)
        self.submit(fetch, *smoke_run)
        self.run(commands[at], self.course)
        self.rest = commands[at + 1:]

    def run(self, command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        argv = self.shlex.split(command.replace("EXCHANGE", str(self.exchange)))
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", *argv]
        done = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=600)
        assert not check or done.returncode == 0, (command, done.stdout[-3000:], done.stderr[-3000:])
        return done

    def submit(self, fetch: str, work: Path, solved) -> None:
        answers = {c.id: c for c in solved.cells}
        for student in ("ann", "cat", "dan", "eve"):
            home = self.root / "homes" / student
            home.mkdir(parents=True)
            self.run(f"{fetch} --Exchange.root=EXCHANGE", home)
            fetched = home / ASSIGNMENT
            assert (fetched / build.wheel_name()).is_file()
            notebook = fetched / build.SOURCE.name
            nb = nbformat.read(notebook, as_version=4)
            if student == "ann":  # the solution and the outputs of a (smoke) run
                for cell in nb.cells:
                    if cell.metadata.get("nbgrader", {}).get("solution"):
                        cell.source = answers[cell.id].source
                    if cell.cell_type == "code":
                        cell.outputs = answers[cell.id].outputs
                shutil.copytree(work / "outputs", fetched / "outputs")  # the weights are elsewhere (FCNKIT_WEIGHTS)
            if student == "dan":  # a test cell pasted twice: nbgrader refuses the notebook
                cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "fcn32s_vgg_layers")
                copy = nbformat.from_dict(cell)
                copy.id = "pasted-copy"
                nb.cells.insert(nb.cells.index(cell) + 1, copy)
            nbformat.write(nb, notebook)
            if student == "eve":
                notebook.rename(fetched / f"{ASSIGNMENT} (1).ipynb")
            self.run(f"nbgrader submit {ASSIGNMENT} --course fcn-segmentation --Exchange.root=EXCHANGE "
                     f"--student={student}", home)


@pytest.fixture(scope="module")
def course(smoke_run, notebook_env, tmp_path_factory) -> Course:
    return Course(tmp_path_factory.mktemp("readme-course"), smoke_run)


@pytest.mark.slow
def test_the_build_records_the_assignment_and_students_submit_what_nbgrader_accepts(course):
    """``build.py --release`` records the assignment in the course's gradebook.db, as nbgrader
    generate_assignment does (the README's course never runs that), so ``grade --gradebook`` can file
    scores; ann's submission holds her predictions, under nbgrader's default 100 MB limit."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course.course / 'gradebook.db'}") as gb:
        filed = {c.name for c in gb.find_notebook(build.SOURCE.stem, ASSIGNMENT).grade_cells}
    assert filed == {item.name for item in RUBRIC} | {"question1", "question2"}
    submitted = course.course / "submitted" / "ann" / ASSIGNMENT
    assert (submitted / "outputs" / "fcn8s_predictions.npz").is_file()
    assert sum(p.stat().st_size for p in submitted.rglob("*") if p.is_file()) < 2e6
    assert (course.course / "submitted" / "eve" / ASSIGNMENT / f"{ASSIGNMENT} (1).ipynb").is_file()


@pytest.mark.slow
def test_nbgraders_own_autograde_scores_the_solution_full_and_the_release_zero(course, tmp_path):
    """nbgrader's own autograde (it runs the notebooks, the hidden tests restored), on a copy of the
    collected course: ann full marks, cat 0."""
    from nbgrader.api import Gradebook
    copy = tmp_path / "course"
    shutil.copytree(course.course, copy, symlinks=True)
    nbgrader(copy, "autograde", ASSIGNMENT, "--CourseDirectory.student_id_exclude=dan,eve")
    with Gradebook(f"sqlite:///{copy / 'gradebook.db'}") as gb:
        for student, score in (("ann", AUTO_POINTS), ("cat", 0)):
            graded = gb.find_submission(ASSIGNMENT, student)
            assert (graded.code_score, graded.max_code_score) == (score, AUTO_POINTS), student


@pytest.mark.slow
def test_the_readmes_course_is_graded_answers_imported_and_fed_back(course):
    """The README's commands after collect, as written: the grader files ann's scores (from her
    predictions) and cat's into nbgrader's gradebook, names dan and eve with nbgrader's cause and the
    fix and files no automatic score for them (exit 1); the written answers, scored on their pages (a
    CSV per question), go into the gradebook too (between grade and feedback); then feedback."""
    from nbgrader.api import Gradebook, MissingEntry
    from autograder.__main__ import main
    at = [c.startswith("python -m autograder grade") for c in course.rest].index(True)
    graded = course.run(course.rest[at], course.course, check=False)
    assert graded.returncode == 1, graded.stdout[-3000:] + graded.stderr[-3000:]
    assert f"ann: {AUTO_POINTS} / {AUTO_POINTS} into nbgrader's gradebook" in graded.stdout
    assert "no assignment" not in graded.stderr
    [dan] = [line for line in graded.stderr.splitlines() if line.startswith("error: dan:")]
    assert "Cell with id 'fcn32s_vgg_layers' exists multiple times" in dan, dan  # nbgrader's cause, quoted
    assert "fix the notebook in submitted/dan/" in dan
    [eve] = [line for line in graded.stderr.splitlines() if line.startswith("error: eve:")]
    assert f"the notebook is {ASSIGNMENT} (1).ipynb, nbgrader expects {ASSIGNMENT}.ipynb: rename it" in eve
    reports = course.course / "grading-reports"
    report = json.loads((reports / "ann.json").read_text())
    miou = [c for c in report["checks"] if c["name"].endswith("_miou")]
    assert len(miou) == 2
    assert all(c["status"] == "passed" and "from the submitted predictions" in c["message"] for c in miou)
    assert report["score"] == report["graded_max_score"] == AUTO_POINTS
    assert json.loads((reports / "cat.json").read_text())["score"] == 0
    gradebook = f"sqlite:///{course.course / 'gradebook.db'}"
    with Gradebook(gradebook) as gb:
        assert gb.find_submission(ASSIGNMENT, "ann").code_score == AUTO_POINTS
        assert gb.find_submission(ASSIGNMENT, "cat").code_score == 0
        for item in ("fcn8s_miou", "fcn8s_head"):
            assert gb.find_grade(item, build.SOURCE.stem, ASSIGNMENT, "ann").auto_score == ITEMS[item].points
        assert gb.find_grade("question1", build.SOURCE.stem, ASSIGNMENT, "ann").needs_manual_grade
        for student in ("dan", "eve"):  # no automatic score at all, rather than nbgrader's output-based one
            try:
                filed = gb.find_submission_notebook(build.SOURCE.stem, ASSIGNMENT, student)
            except MissingEntry:
                continue
            assert all(g.auto_score is None for g in filed.grades), student
    # filing the same reports again (a regrade does) changes nothing and says the same, in this process
    from autograder.reports.nbgrader import record
    from autograder.results import read_report
    again = record(course.course, [read_report(reports / f"{s}.json") for s in ("ann", "cat", "dan", "eve")])
    assert [line.split(":")[0] for line in again.done] == ["ann", "cat"], again.done
    assert [line.split(":")[0] for line in again.problems] == ["dan", "eve"], again.problems
    with Gradebook(gradebook) as gb:
        assert gb.find_submission(ASSIGNMENT, "ann").code_score == AUTO_POINTS
        assert gb.find_submission(ASSIGNMENT, "cat").code_score == 0
    scores = course.root / "scores-question1.csv"
    scores.write_text('student,question,score,comment\r\nann,question1,12,"names overfitting; no numbers"\r\n')
    assert main(["answers", "--import", str(scores), "--reports", str(reports), "--gradebook", str(course.course)]) == 0
    with Gradebook(gradebook) as gb:
        grade = gb.find_grade("question1", build.SOURCE.stem, ASSIGNMENT, "ann")
        assert grade.manual_score == 12 and not grade.needs_manual_grade
        assert gb.find_comment("question1", build.SOURCE.stem, ASSIGNMENT, "ann").manual_comment == \
            "names overfitting; no numbers"
        assert gb.find_submission(ASSIGNMENT, "ann").score == AUTO_POINTS + 12
    for command in course.rest[at + 1:]:  # nbgrader generate_feedback
        course.run(command, course.course)
    page = (course.course / "feedback" / "ann" / ASSIGNMENT / f"{build.SOURCE.stem}.html").read_text()
    passed = f"PASS {ITEMS['fcn8s_miou'].title}: {ITEMS['fcn8s_miou'].points} / {ITEMS['fcn8s_miou'].points}"
    assert passed.replace("'", "&#39;") in page or passed in page
    assert "names overfitting; no numbers" in page
