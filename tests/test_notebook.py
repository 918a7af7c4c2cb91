"""The assignment notebook: the source runs top to bottom in smoke mode, the release is current and
holds no solutions, and nbgrader grades the source solution 70/70 and the untouched release 0/70."""
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

from autograder.rubric import RUBRIC
from fcnkit.data import SAMPLE_ROOT

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402

ASSIGNMENT = build.ASSIGNMENT
AUTO_POINTS = sum(item.points for item in RUBRIC)


@pytest.fixture(scope="module")
def notebook_env(vgg_features_file):
    """What CI sets for the notebook: smoke mode, local VGG weights, and mIoU thresholds of 0 (a
    smoke run's weights are barely trained; the threshold logic is tested in autograder/tests)."""
    env = {"FCNKIT_SMOKE": "1", "FCNKIT_VGG16_WEIGHTS": str(vgg_features_file), "FCNKIT_DATA": str(SAMPLE_ROOT),
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


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, notebook_env):
    work = tmp_path_factory.mktemp("smoke")
    shutil.copy(build.SOURCE, work)
    nb = execute(work / build.SOURCE.name)
    return work, nb


def test_source_runs_top_to_bottom_in_smoke_mode(smoke_run):
    work, nb = smoke_run
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells)
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in code_cells for o in c.outputs)
    assert text.count("PASS ") == 2 * len(RUBRIC)  # fcnkit's check, then the grader's (hidden in the release)
    figures = sum("image/png" in o.get("data", {}) for c in code_cells for o in c.outputs)
    assert figures >= 5
    metrics = json.loads((work / "outputs" / "metrics.json").read_text())
    assert metrics["mode"] == "smoke" and set(metrics["test"]) == {"fcn32s_scratch", "fcn32s", "fcn8s"}
    assert (work / "outputs" / "fcn32s.pt").is_file() and (work / "outputs" / "fcn8s.pt").is_file()


def grade_cells(nb):
    return [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"].get("points"), c.cell_type,
             c.metadata["nbgrader"].get("locked"))
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def test_release_is_current_and_clean():
    assert subprocess.run([sys.executable, str(REPO / "notebooks" / "build.py"), "--check"]).returncode == 0
    source = nbformat.read(build.SOURCE, as_version=4)
    release = nbformat.read(build.RELEASE, as_version=4)
    text = build.RELEASE.read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "instructor key", "padding=100)", "31:31 +"):
        assert marker not in text, marker
    assert grade_cells(release) == grade_cells(source)
    points = {gid: p for gid, p, kind, _ in grade_cells(release)}
    assert sum(p for gid, p in points.items() if not gid.startswith("question")) == AUTO_POINTS == 70
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
    subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}", "--log-level=WARN"],
                   cwd=course, check=True)


def test_nbgrader_autograde_scores_solution_full_and_release_zero(smoke_run, tmp_path):
    from nbgrader.api import Gradebook
    work, _ = smoke_run
    course = tmp_path / "course"
    build.generate_release(course)  # also records the assignment in the course's gradebook
    for student, notebook in (("alice", work / build.SOURCE.name), ("bob", build.RELEASE)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / build.SOURCE.name)
        nbgrader(course, "db", "student", "add", student)
    shutil.copytree(work / "outputs", course / "submitted" / "alice" / ASSIGNMENT / "outputs")
    nbgrader(course, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        alice = gb.find_submission(ASSIGNMENT, "alice")
        bob = gb.find_submission(ASSIGNMENT, "bob")
        assert (alice.code_score, alice.max_code_score) == (70, 70)
        assert (bob.code_score, bob.max_code_score) == (0, 70)
