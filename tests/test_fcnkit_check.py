"""``python -m fcnkit check``: the student's pre-submission check, outside Jupyter, in the student's
own process, needing nothing of the grader and nothing Linux-only; and the reference activations it
compares with, regenerated from the reference solution."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "notebooks" / "source" / "fcn_segmentation" / "fcn_segmentation.ipynb"
sys.path.insert(0, str(REPO / "notebooks"))
import build  # noqa: E402
from autograder.tests.test_grading import ipython_session  # noqa: E402
from fcnkit._grading.verdicts import Status  # noqa: E402
from fcnkit.checks import check  # noqa: E402

# As on macOS (no memfd) and Windows (no C library by CDLL(None)): both are removed before fcnkit is
# imported. The autograder is not importable either: the student wheel has none.
NOT_LINUX = """
import ctypes, os, sys
del os.memfd_create
real_cdll = ctypes.CDLL
class NoProcessLibrary(real_cdll):
    def __init__(self, name, *args, **kwargs):
        if name is None:
            raise TypeError("LoadLibrary() argument 1 must be str, not None")  # Windows' own error
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = NoProcessLibrary
sys.modules["autograder"] = None
from fcnkit.__main__ import main
from fcnkit._grading import seeded
rc = main(sys.argv[1:])
assert not seeded.maps_repeated_weights(), "the Linux-only path was used"
sys.exit(rc)
"""


def fcnkit_check(home: Path, *args, code=None):
    """``python -m fcnkit ARGS`` (or ``code`` with ARGS) from ``home``, as a student runs it."""
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "fcnkit", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "MPLCONFIGDIR": str(home)}
    env.pop("FCNKIT_DATA", None)
    return subprocess.run(command, capture_output=True, text=True, cwd=home, timeout=900, env=env)


def lines(output: str) -> dict:
    return {line.split(":")[0]: line for line in output.splitlines() if line.startswith(("PASS", "FAIL", "NOT"))}


def test_the_reference_notebook_passes_without_linux_only_apis(tmp_path):
    """The source notebook (its solutions in place), as a student on macOS or Windows checks it:
    every structural item passes, the mIoU items are named as not checked (no predictions)."""
    result = fcnkit_check(tmp_path, "check", str(SOURCE), code=NOT_LINUX)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result.stdout)
    structural = [i.name for i in build.RUBRIC if not i.needs_weights]
    assert sorted(found) == sorted([f"PASS {n}" for n in structural] +
                                   [f"NOT CHECKED {i.name}" for i in build.RUBRIC if i.needs_weights]), result.stdout
    assert "training cells are not run" in result.stdout
    points = sum(i.points for i in build.RUBRIC if not i.needs_weights)
    trained = [i for i in build.RUBRIC if i.needs_weights]
    assert (f"{points} of the {points} points checked here pass; not checked: {', '.join(i.name for i in trained)} "
            f"({sum(i.points for i in trained)} points") in result.stdout


def test_a_mistake_fails_its_item_with_the_graders_message(tmp_path):
    from autograder.catalogue import write_submissions
    [path] = write_submissions(tmp_path, ["fcn8s_score_pool4_crop_9"])
    result = fcnkit_check(tmp_path, "check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    found = lines(result.stdout)
    assert [k for k in found if k.startswith("FAIL")] == ["FAIL fcn8s_equivalence"], result.stdout
    assert ("it matches up to score_pool4; sum after upscore2 differs by" in found["FAIL fcn8s_equivalence"]
            and "check the crop of score_pool4 (expected offset 5)" in found["FAIL fcn8s_equivalence"])


def test_a_file_that_is_not_a_notebook_is_named(tmp_path):
    bad = tmp_path / "fcn_segmentation.ipynb"
    bad.write_text("{not json")
    result = fcnkit_check(tmp_path, "check", str(bad))
    assert result.returncode == 2 and "fcn_segmentation.ipynb is not a valid notebook" in result.stderr


def test_the_shipped_reference_activations_are_the_references():
    """Regenerated from autograder/reference/models.py, they match what fcnkit ships (what
    ``build.py --check`` also checks); a changed reference would not."""
    arrays = build.reference_stage_arrays()
    assert build.stages_differ(build.REFERENCE_STAGES, arrays) == ""
    assert build.REFERENCE_STAGES.stat().st_size < 2**20
    changed = dict(arrays)
    changed["fcn8s/sum after upscore2"] = arrays["fcn8s/sum after upscore2"] + np.float32(0.01)
    assert build.stages_differ(build.REFERENCE_STAGES, changed) == "fcn8s sum after upscore2: other values"
    assert build.RUBRIC_JSON.read_text(encoding="utf-8") == build.rubric_json()


@pytest.mark.parametrize("kind", ["fcn32s", "fcn8s"])
def test_the_shipped_activations_hold_no_code(kind):
    """Numbers only: npz of float32 arrays and a JSON header, read without pickle."""
    with np.load(build.REFERENCE_STAGES, allow_pickle=False) as stored:
        assert all(stored[k].dtype == np.float32 for k in stored.files if k != "meta")
        assert any(k.startswith(f"{kind}/") for k in stored.files)


# ----------------------------------------------------------------------------------- the rule, on both sides
def kept(cells: list[tuple[int, str]]) -> list[str]:
    from fcnkit._grading.extract import definitions
    return [c.source for c in definitions(cells, "nb.ipynb").chunks]


def test_the_assignments_definitions_read_are_kept_transitively():
    got = kept([(1, "import os\nfrom torch import nn\nfrom fcnkit import data\nN_CLASS = data.N_CLASS\nSTRIDE = 16\n"
                    "LOG = open('log.txt', 'w')\nunused = os.getcwd()"),
                (2, "K = 2 * STRIDE\nmake_relu = lambda: nn.ReLU(inplace=True)\nACT = nn.ReLU\nH, W = K, K"),
                (3, "class M(nn.Module):\n    def __init__(self, n_class=N_CLASS):\n        super().__init__()\n"
                    "        x = ACT()\n        self.act, self.relu, self.size = x, make_relu(), (H, W)\n"),
                (4, "N_CLASS = 12 + 0  # the last one in force, as in a run from top to bottom")])
    assert got == ["import os", "from torch import nn", "from fcnkit import data", "N_CLASS = data.N_CLASS",
                   "STRIDE = 16", "K = 2 * STRIDE", "make_relu = lambda: nn.ReLU(inplace=True)", "ACT = nn.ReLU",
                   "H, W = (K, K)", got[9], "N_CLASS = 12 + 0"]
    assert got[9].startswith("class M(nn.Module):")  # not LOG, unused or x: nothing reads them from the module


@pytest.mark.parametrize("training", [
    "for epoch in range(2):\n    pass\nRUN = 1 + 1",  # a loop
    "model = M()\nRUN = fit(model, None, None, n_class=N_CLASS, epochs=1)",  # fcnkit's training
    "RUN = train_it(M())",  # a function of the notebook that trains
    "if True:\n    loss = model(x).sum()\n    loss.backward()\nRUN = 2 * 2",  # .backward() under an if
])
def test_nothing_is_taken_from_a_training_cell(training):
    cells = [(1, "from torch import nn\nfrom fcnkit.train import fit\n\ndef train_it(m):\n    return fit(m)"),
             (2, training),
             (3, "class M(nn.Module):\n    def report(self):\n        return RUN")]
    assert [s.split("(")[0] for s in kept(cells)] == ["from torch import nn", "from fcnkit.train import fit",
                                                      "def train_it", "class M"]


def test_in_a_py_file_each_statement_is_a_cell():
    source = ("from fcnkit.train import fit\nRUN = fit(M())\nSTEPS = 2 * 2\nfor i in range(STEPS):\n    pass\n"
              "def report():\n    return RUN, STEPS")
    assert kept([(0, source)]) == ["from fcnkit.train import fit", "STEPS = 2 * 2",
                                   "def report():\n    return (RUN, STEPS)"]


def test_a_function_that_trains_is_kept_without_what_it_reads():
    cells = [(1, "from fcnkit.train import fit\nLOADERS = make_loaders(splits)\nDEVICE = pick()\nSCALE = 0.5"),
             (2, "def train(model):\n    return fit(model, LOADERS['train'], device=DEVICE, scale=SCALE)")]
    assert kept(cells) == ["from fcnkit.train import fit", "SCALE = 0.5", cells[1][1]]  # not LOADERS or DEVICE


def test_a_session_is_checked_as_the_grader_sees_it(tmp_path, capsys):
    """The check cells judge what the grader keeps of the cells the kernel ran, not its live globals:
    a name the model reads from a training cell (a literal would be kept) fails there with the grader's message (though the
    session has it), the training cell is not run again, and a cell magic is read as the saved
    notebook holds it."""
    from autograder.catalogue import REFERENCE
    from fcnkit._grading.judges import CheckFailed
    marker = tmp_path / "trained.txt"
    model = REFERENCE[:REFERENCE.index("# BEGIN FCN8s")].replace("stride=32, bias=False", "stride=STRIDE, bias=False")
    shell = ipython_session([
        "import torch\nfrom pathlib import Path\nfrom fcnkit.checks import check\nfrom fcnkit.train import fit",
        "%%capture\n" + model,
        f"STRIDE = 2 * 16\ntrained = Path({str(marker)!r}).write_text('trained')\nrun = fit(FCN32s(), None, None, "
        f"n_class=12, epochs=1)",  # a training cell: the kernel ran it, the grader never does
    ])
    assert marker.exists() and shell.user_ns["STRIDE"] == 32 and "FCN32s" in shell.user_ns
    marker.unlink()
    with pytest.raises(CheckFailed) as failed:
        check("fcn32s_head", shell.user_ns)
    assert str(failed.value) == ("FCN32s(n_class=12) raised NameError: name 'STRIDE' is not defined in what the grader "
                                 "keeps of your notebook: define it at the top level of a cell that does not train "
                                 "(imports, functions, classes and the assignments they use are kept).")
    assert not marker.exists()
    shell.run_cell("STRIDE = 2 * 16", store_history=True)  # where definitions must live
    check("fcn32s_head", shell.user_ns)
    assert capsys.readouterr().out.splitlines()[-1].startswith("PASS fcn32s_head")
    assert not marker.exists()


def test_without_cell_history_the_namespace_given_is_judged(capsys):
    from autograder.catalogue import REFERENCE
    namespace = {"__name__": "submission"}
    exec(REFERENCE.replace("n_class, 64, stride=32", "n_class, 64, stride=STRIDE"), namespace)
    namespace["STRIDE"] = 32
    check("fcn32s_head", namespace)
    assert capsys.readouterr().out.startswith("PASS fcn32s_head")


def test_a_failing_check_shows_its_verdict_and_message_not_fcnkits_frames(capsys):
    """In a kernel, a failing check cell shows two lines, ``FAIL item`` and ``CheckFailed: message``, and
    still raises (nbgrader counts the cell as failed); other errors keep their traceback."""
    from fcnkit._grading.judges import CheckFailed
    shell = ipython_session(["from fcnkit.checks import check"])
    capsys.readouterr()
    result = shell.run_cell('check("fcn32s_head", globals())', store_history=True)
    out = capsys.readouterr().out
    assert isinstance(result.error_in_exec, CheckFailed)
    assert out.strip() == ("FAIL fcn32s_head\nCheckFailed: No class named FCN32s was found; define `class "
                           "FCN32s(nn.Module)`."), out
    result = shell.run_cell("1 / 0", store_history=True)
    assert isinstance(result.error_in_exec, ZeroDivisionError) and "Traceback" in capsys.readouterr().out


def test_what_is_read_of_a_submission_is_bounded(monkeypatch):
    """Chained assignments read by a class (hostile: 150,001 chunks and 10 s unbounded) stop at the
    bounds with a note naming them; the name left unresolved is then a named NameError."""
    from fcnkit._grading import extract
    monkeypatch.setattr(extract, "MAX_READ_ASSIGNMENTS", 10)
    chain = "A0 = 1\n" + "".join(f"A{i} = A{i - 1} + 0\n" for i in range(1, 30)) + "class M:\n    n = A29\n"
    got = extract.definitions([(1, chain)], "nb.ipynb")
    assert len(got.chunks) == 12 and got.notes == [
        "the definitions read more than 10 top-level assignments (one reading the next): the grader kept 10 of them "
        "and stopped at 'A19'; write constants as literals, or compute them inside the functions and classes that "
        "use them."]
    monkeypatch.setattr(extract, "MAX_STATEMENTS", 20)
    got = extract.definitions([(1, "import os"), (2, chain), (3, "X = 1")], "nb.ipynb")
    assert [c.source for c in got.chunks] == ["import os"] and got.notes == [
        "cell 2 and what follows were skipped: the grader reads at most 20 top-level statements of a submission, "
        "and this one has more."]
    got = extract.definitions([(0, chain)], "sub.py")  # a .py file: its first statements
    assert len(got.chunks) == 1 and got.notes[0].startswith("sub.py: only its first 20 top-level statements were read")


# ----------------------------------------------------------------------------------- which judgement an item names
def test_every_item_names_a_judgement_students_run_as_the_rubric_says():
    from autograder.rubric import RUBRIC
    from fcnkit.checks import JUDGEMENTS, rubric
    assert [(i.name, i.observes, i.judged_by) for i in rubric()] == [(i.name, i.observes, i.judged_by) for i in RUBRIC]
    assert {i.judged_by for i in rubric()} <= {*JUDGEMENTS, "miou"}


def test_an_item_naming_no_judgement_is_an_error_and_one_naming_none_is_the_graders(monkeypatch):
    """The judgement is the one the item declares (never read off its name): a declared one that does
    not exist is an error in the rubric, not a silent NOT CHECKED; judged_by="" is the grader's alone."""
    import dataclasses

    from autograder.catalogue import REFERENCE
    from fcnkit import checks
    namespace = {"__name__": "submission"}
    exec(REFERENCE, namespace)
    expected = checks.run_check("fcn32s_head", namespace)
    head = next(i for i in checks.rubric() if i.name == "fcn32s_head")
    ours = dataclasses.replace(head, name="fcn32s_layers_after_vgg")  # a name with no "head" in it
    typo = dataclasses.replace(head, name="fcn32s_new", judged_by="haed")
    theirs = dataclasses.replace(head, name="fcn32s_theirs", judged_by="")
    monkeypatch.setattr(checks, "rubric", lambda: (ours, typo, theirs))
    assert checks.run_check("fcn32s_layers_after_vgg", namespace) == expected
    with pytest.raises(ValueError, match="rubric item .fcn32s_new. is judged_by 'haed', which fcnkit.checks.JUDGEMENTS "
                                       "does not have"):
        checks.run_check("fcn32s_new", namespace)
    assert checks.run_check("fcn32s_theirs", namespace) is None
    monkeypatch.setattr(checks, "rubric", lambda: (ours, theirs))
    verdicts = {v.name: v for v in checks.check_all(namespace)}
    assert verdicts["fcn32s_theirs"].status is Status.NOT_CHECKED
    assert (verdicts["fcn32s_layers_after_vgg"].status, verdicts["fcn32s_layers_after_vgg"].message) == (Status.PASSED, expected)
