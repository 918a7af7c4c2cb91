"""The grader end to end (sandboxed worker processes): reports, layouts, checkpoints, and bad
submissions that must cost their own checks and nothing else."""
import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
import torch

from autograder.__main__ import main
from autograder.pipeline import EvalSet, Limits, find_submissions, grade_submission, grading_run
from autograder.reference.models import FCN32s
from autograder.catalogue import REFERENCE, sources
from autograder.results import Report
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.data import SAMPLE_ROOT

# A correct check needs about 1 s of CPU. The wall-clock backstop is far above the CPU limit, so that a busy
# machine (another test's grading beside this one: pytest -n 2) never turns "used too much CPU" into "waited".
FAST = Limits(wall_s=90, check_s=4, check_wall_s=60, memory_gb=8)
WAITS = Limits(wall_s=60, check_s=4, check_wall_s=8, memory_gb=8)  # for the submission that sleeps
HEADERS = ("import torch\nfrom torch import nn\n")
TOTAL = sum(i.points for i in RUBRIC)
STRUCTURAL = {kind: sum(i.points for i in RUBRIC if i.model == kind and not i.needs_weights)
              for kind in ("fcn32s", "fcn8s")}  # what a run without trained results grades
FULL = sum(STRUCTURAL.values())
TRAINED = [i for i in RUBRIC if i.needs_weights]


def by_name(report):
    """The checks by name of a report's JSON, or of a Report in that form (as <student>.json holds it)."""
    return {c["name"]: c for c in (report.to_json() if isinstance(report, Report) else report)["checks"]}


@pytest.fixture(scope="module")
def fast_run():
    """One warm grading run under FAST limits for the tests that grade a file under them: starting a run
    (the isolation probe, the warm worker, the reference's child) costs more than grading a submission,
    and each submission is a fresh fork of the worker (test_nothing_leaks_into_the_next_submission)."""
    with grading_run(limits=FAST) as run:
        yield run


def grade_source(tmp_path, source, only, run=None, name="student.py", limits=FAST):
    """Grade ``source`` as a file ``name``: in ``run``, or in a run of its own under ``limits``."""
    path = tmp_path / name
    path.write_text(source)
    return by_name(grade_submission("student", path, limits=limits, only=only, run=run))


@pytest.mark.slow
def test_cli_grades_a_class_in_nbgrader_layout(tmp_path, capsys):
    submitted = tmp_path / "submitted"
    for student, source in (("alice", "reference"), ("bob", "fcn32s_crop_0")):
        folder = submitted / student / "fcn_segmentation"
        folder.mkdir(parents=True)
        (folder / "fcn_segmentation.py").write_text(sources()[source])
    out = tmp_path / "reports"
    assert main(["grade", str(submitted), "--out", str(out), "--jobs", "2", "--json", str(tmp_path / "all.json"),
                 "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "alice" in table and "bob" in table
    reports = {r["student"]: r for r in json.loads((tmp_path / "all.json").read_text())}
    assert reports["alice"]["score"] == FULL and reports["alice"]["max_score"] == TOTAL
    # without trained weights the mIoU items are pending, not failed: all the points this run could grade
    [alice_row] = [line for line in table.splitlines() if line.startswith("alice")]
    assert alice_row.split()[1:4] == [f"{STRUCTURAL['fcn32s']}/{STRUCTURAL['fcn32s']}",
                                      f"{STRUCTURAL['fcn8s']}/{STRUCTURAL['fcn8s']}", f"{FULL}/{FULL}"]
    assert "(of gradable)" in table and "--data DIR" in table
    assert (f"not graded ({', '.join(i.name for i in TRAINED)}: {sum(i.points for i in TRAINED)} points)"
            in table)
    assert reports["alice"]["graded_max_score"] == FULL
    assert {c["status"] for c in reports["alice"]["checks"] if c["name"].endswith("_miou")} == {"not graded"}
    rows = (out / "grades.csv").read_text().splitlines()
    header, alice = rows[0].split(","), next(r for r in rows if r.startswith("alice")).split(",")
    assert alice[header.index("fcn32s_miou")] == "" and alice[header.index("fcn32s_head")] == "4"
    assert "pending" in (out / "feedback" / "alice.html").read_text()
    bob = by_name(reports["bob"])
    assert bob["fcn32s_equivalence"]["score"] == 0
    assert bob["fcn8s_equivalence"]["score"] == ITEMS["fcn8s_equivalence"].points
    assert (out / "grades.csv").read_text().count("\n") == 3
    page = (out / "feedback" / "bob.html").read_text()
    assert "check the final crop: it starts at offset 19 and keeps as many rows and columns as the input has" in page and "<table>" in page
    assert reports["bob"]["isolation"]["layers"][-1] == "rlimits"
    # a run's seed is in every report; grading again with it gives the same JSON
    seed = str(reports["bob"]["seed"])
    assert main(["grade", str(submitted / "bob"), "--out", str(tmp_path / "again"), "--device", "cpu", "--seed", seed]) == 0
    alone = json.loads((tmp_path / "again" / "bob.json").read_text())
    assert alone.pop("integrity") == []  # alone, bob has no classmates to share anything with
    assert alone == {k: v for k, v in reports["bob"].items() if k != "integrity"}
    assert [f["other"] for f in reports["bob"]["integrity"]] == ["alice"]  # --json has the class's flags, as bob.json


def test_gradescope_results(tmp_path):
    path = tmp_path / "sub.py"
    path.write_text("x = 1\n")
    out = tmp_path / "results.json"
    assert main(["grade", str(path), "--out", str(tmp_path / "r"), "--gradescope", str(out), "--timeout", "60"]) == 0
    results = json.loads(out.read_text())
    assert results["score"] == 0 and len(results["tests"]) == len(RUBRIC)
    assert all({"name", "score", "max_score", "output"} <= set(t) for t in results["tests"])
    assert "No class named FCN32s" in results["tests"][0]["output"]


def test_notebook_with_broken_cell_and_classes_over_cells(tmp_path, fast_run):
    ref = REFERENCE
    helpers = ref[:ref.index("# BEGIN FCN32s")]
    fcn32s = ref[ref.index("# BEGIN FCN32s"):ref.index("# END FCN32s")]
    forward = fcn32s[fcn32s.index("    def forward"):]
    cls_only = fcn32s[:fcn32s.index("    def forward")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline\n!pip install fcnkit\n" + helpers),
        nbformat.v4.new_code_cell(cls_only),
        nbformat.v4.new_code_cell("def forward" + textwrap.dedent(forward)[len("def forward"):] + "\nFCN32s.forward = forward"),
        nbformat.v4.new_code_cell("class FCN8s(nn.Module):\n    def __init__(self, n_class=12)\n        pass"),
        nbformat.v4.new_code_cell("model = FCN32s()\nraise NotImplementedError()"),
    ]
    path = tmp_path / "sub.ipynb"
    nbformat.write(nb, path)
    checks = grade_submission("s", path, limits=FAST, only=["fcn32s_vgg_layers", "fcn32s_equivalence", "fcn8s_head"],
                              run=fast_run)
    got = by_name(checks)
    assert got["fcn32s_vgg_layers"]["status"] == "passed"
    assert got["fcn32s_equivalence"]["status"] == "passed", got["fcn32s_equivalence"]["message"]
    assert "No class named FCN8s" in got["fcn8s_head"]["message"]
    assert any("cell 4 was skipped: syntax error" in n for n in checks.notes)


def ipython_session(cells: list[str]):
    """A fresh IPython session (the kernel's shell, without Jupyter) that ran ``cells``."""
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    for source in cells:
        shell.run_cell(source, store_history=True)
    return shell


def names_read_from_cells(marker) -> list[str]:
    """The reference as notebook cells whose models read what other cells assign: the setup cell's
    ``N_CLASS = data.N_CLASS``, a helper defined by assignment, a value computed from an import; and,
    for FCN-8s, a name only a training cell assigns (that cell writes ``marker`` when it runs)."""
    helpers = REFERENCE[:REFERENCE.index("# BEGIN FCN32s")]
    fcn32s = REFERENCE[REFERENCE.index("# BEGIN FCN32s"):REFERENCE.index("# BEGIN FCN8s")]
    fcn8s = REFERENCE[REFERENCE.index("# BEGIN FCN8s"):REFERENCE.index("# END FCN8s")]
    return [
        "%env FCNKIT_PARITY=1\nfrom pathlib import Path\nfrom fcnkit import data\nfrom fcnkit.train import fit\n"
        "from fcnkit.vgg import get_upsampling_weight\nfrom torch import nn\nN_CLASS = data.N_CLASS\n"
        "make_relu = lambda: nn.ReLU(inplace=True)\nUP_KERNEL = get_upsampling_weight(1, 1, 64).shape[-1]",
        helpers.replace("nn.ReLU(inplace=True)", "make_relu()"),
        fcn32s.replace("n_class: int = 12", "n_class: int = N_CLASS").replace("n_class, 64, stride=32",
                                                                               "n_class, UP_KERNEL, stride=32"),
        fcn8s.replace("        super().__init__()\n", "        super().__init__()\n        self.skips = SKIP_OFFSETS\n", 1),
        f"SKIP_OFFSETS = tuple([5, 9])\ntrained = Path({str(marker)!r}).write_text('trained')\n"
        f"run = fit(FCN32s(), LOADERS['train'], None, n_class=N_CLASS, epochs=1)",
    ]


@pytest.mark.slow
def test_the_grader_and_the_notebook_agree_on_names_the_definitions_read(tmp_path, capsys, fast_run):
    """Parity: what the grader resolves (a constant from a given cell, a helper defined by assignment,
    a value computed from an import) passes on both sides; a name only a training cell assigns is the
    same named FAIL on both, though the notebook's session holds it; the training cell runs on neither."""
    from fcnkit.checks import check
    from fcnkit._grading.judges import CheckFailed
    marker = tmp_path / "trained.txt"
    cells = names_read_from_cells(marker)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, tmp_path / "sub.ipynb")
    items = ["fcn32s_vgg_layers", "fcn32s_head", "fcn32s_equivalence", "fcn8s_head"]
    grader = by_name(grade_submission("s", tmp_path / "sub.ipynb", limits=FAST, only=items, run=fast_run))
    assert not marker.exists()
    shell = ipython_session(cells)
    assert marker.exists() and shell.user_ns["SKIP_OFFSETS"] == (5, 9)  # the kernel ran the training cell
    marker.unlink()
    notebook = {}
    for item in items:
        try:
            check(item, shell.user_ns)
            notebook[item] = ("passed", "")
        except CheckFailed as err:
            notebook[item] = ("failed", str(err))
    assert not marker.exists()
    assert {item: grader[item]["status"] for item in items} == {item: notebook[item][0] for item in items} == {
        **{item: "passed" for item in items[:3]}, "fcn8s_head": "failed"}
    named = ("FCN8s(n_class=12) raised NameError: name 'SKIP_OFFSETS' is not defined in what the grader keeps of "
             "your notebook: define it at the top level of a cell that does not train (imports, functions, classes "
             "and the assignments they use are kept).")
    assert grader["fcn8s_head"]["message"] == notebook["fcn8s_head"][1] == named


def test_unknown_course_module_falls_back_to_fcnkit(tmp_path, fast_run):
    source = REFERENCE.replace("from fcnkit.vgg import get_upsampling_weight",
                               "from course_utils import get_upsampling_weight")
    got = grade_source(tmp_path, source, only=["fcn32s_head"], run=fast_run)
    assert got["fcn32s_head"]["status"] == "passed", got["fcn32s_head"]["message"]


BAD = {
    "exception_in_init": ("class FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n"
                          "        super().__init__()\n        raise ValueError('oops')\n", "ValueError: oops"),
    "endless_forward": (REFERENCE.replace("        h = self.score(vgg16_forward(self, x)[\"fc7\"])",
                                          "        while True:\n            pass"), "used more than 4 s of CPU time"),
    "sleeping_forward": (REFERENCE.replace("        h = self.score(vgg16_forward(self, x)[\"fc7\"])",
                                           "        import time\n        time.sleep(1000)"),
                         "did not finish within 8 s of wall-clock time"),
    "memory_hog": ("class FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n        super().__init__()\n"
                   "        self.hog = torch.zeros(2 ** 34)\n", "allocate"),
    "opens_socket": ("import socket\nclass FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n"
                     "        super().__init__()\n        socket.create_connection(('127.0.0.1', 9))\n",
                     "PermissionError"),
    "runs_shell": ("import os\nclass FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n"
                   "        super().__init__()\n        assert os.system('echo hi') == 0, 'no shell'\n", "no shell"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_submission_costs_its_checks_only(tmp_path, case, fast_run):
    source, expected = BAD[case]
    if case == "sleeping_forward":  # a run of its own, whose backstop comes sooner than FAST's
        got = grade_source(tmp_path, HEADERS + source, only=["fcn32s_output_shape"], limits=WAITS)
    else:
        got = grade_source(tmp_path, HEADERS + source, only=["fcn32s_output_shape"], run=fast_run)
    assert got["fcn32s_output_shape"]["status"] == "failed"
    assert expected in got["fcn32s_output_shape"]["message"]


def test_writes_outside_the_sandbox_are_refused(tmp_path, fast_run):
    target = tmp_path / "stolen.txt"
    source = HEADERS + (f"class FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n"
                        f"        super().__init__()\n        open({str(target)!r}, 'w').write('x')\n")
    got = grade_source(tmp_path, source, only=["fcn32s_head"], run=fast_run)
    message = got["fcn32s_head"]["message"]  # not in the child's file system at all, or refused by Landlock
    assert "No such file or directory" in message or "Permission denied" in message
    assert not target.exists()


@pytest.mark.slow
def test_hard_crash_and_endless_definitions_are_reported(tmp_path, fast_run):
    crash = HEADERS + "import os\nclass FCN32s(nn.Module):\n    def __init__(self, n_class=12):\n        os._exit(3)\n"
    (tmp_path / "c.py").write_text(crash)
    report = grade_submission("s", tmp_path / "c.py", limits=FAST, only=["fcn32s_head", "fcn8s_head"], run=fast_run)
    got = by_name(report)
    assert "ended the submission's process (exit code 3" in got["fcn32s_head"]["message"]
    # a fresh child takes the remaining checks: FCN-8s is judged on its own (here: not defined)
    assert "No class named FCN8s" in got["fcn8s_head"]["message"]
    hang = HEADERS + "class FCN32s(nn.Module):\n    while True:\n        pass\n"
    (tmp_path / "h.py").write_text(hang)
    report = grade_submission("s", tmp_path / "h.py", limits=Limits(wall_s=60, check_s=3, memory_gb=8),
                              only=["fcn32s_head"])
    assert "No class named FCN32s" in by_name(report)["fcn32s_head"]["message"]
    assert any("used more than 3 s of CPU time (the limit per check); the grader skipped it" in n
               for n in report.notes)


def test_broken_notebook_file(tmp_path, fast_run):
    path = tmp_path / "broken.ipynb"
    path.write_text("{ this is not json")
    report = grade_submission("s", path, limits=FAST, run=fast_run)
    assert report.score == 0
    assert all("not a valid notebook" in c.message for c in report.checks if not c.name.endswith("miou"))


@pytest.fixture(scope="module")
def sample_eval(tmp_path_factory):
    return EvalSet.load(SAMPLE_ROOT, "test", 0.5, tmp_path_factory.mktemp("eval"))


@pytest.fixture(scope="module")
def eval_run(sample_eval):
    """One warm run that evaluates checkpoints on the sample's test split, for the checkpoint cases."""
    with grading_run(evalset=sample_eval, limits=FAST) as run:
        yield run


@pytest.mark.slow
def test_checkpoints_scored_in_the_grader(tmp_path, sample_eval, eval_run, monkeypatch):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(FCN32s().state_dict(), ckpt / "fcn32s.pt")
    torch.save({"conv1_1.weight": torch.zeros(1)}, ckpt / "fcn8s.pt")  # wrong shape
    path = tmp_path / "s.py"
    path.write_text(REFERENCE)
    report = grade_submission("s", path, checkpoints=ckpt, evalset=sample_eval, limits=FAST,
                              only=["fcn32s_miou", "fcn8s_miou"], run=eval_run)
    got = by_name(report)
    # an untrained FCN-32s predicts one class everywhere: far below the threshold, measured here
    assert "below the threshold 0.30" in got["fcn32s_miou"]["message"]
    assert report.metrics["fcn32s"]["mean_iou"] < 0.1
    assert "does not fit the model" in got["fcn8s_miou"]["message"]
    monkeypatch.setenv("FCNKIT_MIOU_THRESHOLDS", "fcn32s=0.0")  # read by the judgement, in the grading process
    report = grade_submission("s", path, checkpoints=ckpt, evalset=sample_eval, limits=FAST, only=["fcn32s_miou"],
                              run=eval_run)
    assert by_name(report)["fcn32s_miou"]["status"] == "passed"


def test_pickled_object_checkpoint_is_refused(tmp_path, sample_eval, eval_run):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(torch.nn.Linear(2, 2), ckpt / "fcn32s.pt")  # a pickled module, not a state_dict
    path = tmp_path / "s.py"
    path.write_text(REFERENCE)
    got = by_name(grade_submission("s", path, checkpoints=ckpt, evalset=sample_eval, limits=FAST,
                                   only=["fcn32s_miou"], run=eval_run))
    assert "not a plain state_dict" in got["fcn32s_miou"]["message"]
    assert "no fcn8s.pt found" in got["fcn8s_miou"]["message"]


@pytest.mark.slow
def test_a_checkpoint_that_is_a_pipe_or_a_link_is_not_opened(tmp_path):
    """The grader opens each checkpoint and hands the child the open file. A pipe would block the
    grading process for good; a link could hand the child any file the grader may read (a label
    of the test split here, which the child may not read by its path). Neither is opened: the item
    fails with the reason, and the rest of the submission is graded."""
    folder = tmp_path / "class" / "mallory" / "hw"
    folder.mkdir(parents=True)
    (folder / "fcn_segmentation.py").write_text(REFERENCE)
    os.mkfifo(folder / "fcn32s.pt")
    (folder / "fcn8s.pt").symlink_to(sorted((SAMPLE_ROOT / "base").glob("*.png"))[0])
    out = tmp_path / "reports"
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "class"), "--checkpoints",
                             str(tmp_path / "class"), "--data", str(SAMPLE_ROOT), "--out", str(out), "--jobs", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    checks = by_name(json.loads((out / "mallory.json").read_text()))
    assert checks["fcn32s_miou"]["score"] == 0 and "fcn32s.pt not read: fcn32s.pt is not a regular file" in \
        checks["fcn32s_miou"]["message"]
    assert checks["fcn8s_miou"]["score"] == 0 and "a link is not accepted" in checks["fcn8s_miou"]["message"]
    assert checks["fcn8s_equivalence"]["score"] == ITEMS["fcn8s_equivalence"].points
    assert checks["fcn32s_copy_params"]["score"] == ITEMS["fcn32s_copy_params"].points


def test_find_submissions_layouts(tmp_path):
    (tmp_path / "submitted" / "ann" / "hw").mkdir(parents=True)
    (tmp_path / "submitted" / "ann" / "hw" / "nb.ipynb").write_text("{}")
    (tmp_path / "submitted" / "ann" / "hw" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "submitted" / "ann" / "hw" / ".ipynb_checkpoints" / "nb-checkpoint.ipynb").write_text("{}")
    (tmp_path / "submitted" / "ben.py").write_text("")
    found = find_submissions(tmp_path / "submitted")
    assert [s for s, _ in found] == ["ann", "ben"]
    with pytest.raises(FileNotFoundError):
        find_submissions(tmp_path / "nowhere")


POLLUTER = """
import builtins, threading, time
import torch
from torch import nn
builtins.FCN32s = builtins.FCN8s = nn.Identity          # a global every later namespace would see
nn.Conv2d.forward = lambda self, x: torch.zeros(1)      # torch itself, monkeypatched
nn.functional.max_pool2d = lambda *a, **k: torch.zeros(1)

def meddle():                                           # a thread that keeps at it
    while True:
        torch.Tensor.__add__ = lambda a, b: a
        time.sleep(0.01)
threading.Thread(target=meddle, daemon=False).start()
"""


@pytest.mark.slow
def test_nothing_leaks_into_the_next_submission(tmp_path):
    """Each submission is a fresh fork of the warm worker: a global, a monkeypatched torch and a
    thread left running by one submission do not change the grade of the next, graded by the same
    worker right after it."""
    from autograder.pipeline import GradingRun, grade_all
    (tmp_path / "a_polluter.py").write_text(POLLUTER)
    (tmp_path / "b_reference.py").write_text(REFERENCE)
    run = GradingRun.start(limits=FAST, seed=11)
    try:
        polluter, after = grade_all(find_submissions(tmp_path), jobs=1, limits=FAST, run=run)
        alone = grade_submission("b_reference", tmp_path / "b_reference.py", limits=FAST, run=run)
    finally:
        run.close()
    assert polluter.score == 0 and after.score == FULL
    assert after.checks == alone.checks


@pytest.mark.slow
def test_a_busy_machine_does_not_change_the_grade(tmp_path):
    """Limits count the child's CPU time: with three busy loops per core, a correct submission under
    a CPU limit of 3 s per check (the equivalence checks, the costliest, need about 1 s of CPU each;
    under this load they take well over 3 s of wall-clock time) gets the report it gets on a quiet
    machine. (The busy loops run only while those two checks do: they slow the rest of the suite.)"""
    import multiprocessing
    import os
    path = tmp_path / "reference.py"
    path.write_text(REFERENCE)
    tight = Limits(wall_s=300, check_s=3, check_wall_s=100, memory_gb=8)
    costliest = ["fcn32s_equivalence", "fcn8s_equivalence"]
    with grading_run(limits=tight) as run:  # one worker: each submission a fresh fork of it
        quiet = grade_submission("s", path, limits=tight, only=costliest, run=run)
        hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(3 * len(os.sched_getaffinity(0)))]
        for hog in hogs:
            hog.start()
        try:
            busy = grade_submission("s", path, limits=tight, only=costliest, run=run)
        finally:
            for hog in hogs:
                hog.kill()
    assert quiet.score == busy.score == sum(ITEMS[name].points for name in costliest)
    assert busy.checks == quiet.checks
    # the load was real: the forward passes took longer (wall clock) than they did on the quiet machine
    assert busy.phases["outputs"] > 1.5 * quiet.phases["outputs"], (busy.phases, quiet.phases)


def _spin():
    import os
    os.setsid()  # a session of its own: with autogroup scheduling, each busy loop weighs like the child
    while True:
        pass


@pytest.mark.slow
def test_a_dead_worker_is_replaced(tmp_path):
    """The kernel's out-of-memory killer takes the warm worker between two submissions: the next one
    is graded by a new worker, warmed with the same seed, as the first was."""
    import os
    import signal
    from autograder.pipeline import GradingRun
    path = tmp_path / "reference.py"
    path.write_text(REFERENCE)
    run = GradingRun.start(limits=FAST, seed=5)
    try:
        first = grade_submission("a", path, limits=FAST, run=run)
        dead = run.runtime.worker
        os.killpg(dead.proc.pid, signal.SIGKILL)
        second = grade_submission("b", path, limits=FAST, run=run)
        assert run.runtime.worker is not dead
    finally:
        run.close()
    assert first.score == second.score == FULL and first.checks == second.checks
