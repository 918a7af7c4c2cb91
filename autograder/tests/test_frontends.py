"""The Gradescope and pytest front-ends give the CLI's verdicts: the real autograder zip run the way
Gradescope runs it (against a folder laid out as /autograder), and real pytest with junitxml, both
compared item by item with ``python -m autograder grade`` on the catalogue."""
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.__main__ import main
from autograder.frontends import gradescope
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.splits import SAMPLE_ROOT

# Gradescope's results.json, as its autograder specification describes it.
TOP_LEVEL = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
             "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_FIELDS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
               "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def validate_results(results: dict) -> None:
    assert set(results) <= TOP_LEVEL, set(results) - TOP_LEVEL
    assert isinstance(results["score"], (int, float)) and isinstance(results["execution_time"], int)
    assert isinstance(results["output"], str) and results["output_format"] in FORMATS
    assert results.get("visibility", "visible") in VISIBILITY and results.get("stdout_visibility") in VISIBILITY
    for test in results["tests"]:
        assert set(test) <= TEST_FIELDS, set(test) - TEST_FIELDS
        assert {"name", "score", "max_score", "output", "output_format", "visibility"} <= set(test)
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float))
        assert test.get("status", "passed") in ("passed", "failed")
        assert test["visibility"] in VISIBILITY and test["output_format"] in FORMATS
    if results["tests"]:
        assert results["score"] == sum(t["score"] for t in results["tests"])


@pytest.fixture(scope="module")
def cli_reports(graded_catalogue) -> dict:
    """``python -m autograder grade`` on the catalogue (seed 7, graded once per session: conftest.py)."""
    return graded_catalogue.reports


def per_item(report: dict) -> dict:
    return {c["name"]: (c["score"], "passed" if c["status"] == "passed" else "not graded"
                        if c["status"] == "not graded" else "failed") for c in report["checks"]}


# ----------------------------------------------------------------------------------- Gradescope
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "fcn_gradescope.zip"
    assert main(["gradescope-bundle", str(out), "--data", str(SAMPLE_ROOT)]) == 0
    return out


def run_autograder(tmp_path: Path, bundle: Path, submission: Path) -> dict:
    """As Gradescope does (the product's own layout and run): run_autograder as root on a folder laid
    out as /autograder, then results/results.json."""
    root = gradescope.lay_out(tmp_path / "autograder", bundle, submission)
    result = gradescope.run_autograder(root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def test_the_bundle_holds_what_gradescope_needs(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        setup = z.read("setup.sh").decode()
        requirements = z.read("requirements.txt").decode()
    assert {"setup.sh", "run_autograder", "requirements.txt"} <= set(names)
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    assert [w.split("/")[1].split("-")[0] for w in wheels] == ["fcnkit", "fcnkit_grader"]
    assert sum(n.endswith(".png") for n in names) == sum(n.endswith(".jpg") for n in names) == 8  # the sample's test
    assert "torch==" in requirements and "nbgrader" not in requirements
    assert subprocess.run(["bash", "-n", "-c", setup]).returncode == 0  # setup.sh parses
    assert "wheels/*.whl" in setup and "bubblewrap" in setup and "download.pytorch.org/whl/cpu" in setup
    # no solution in the zip beyond what the grader needs: the reference lives in the grader's wheel only
    assert not [n for n in names if n.endswith(".py")]


@pytest.mark.slow
def test_gradescope_run_grades_a_submission_like_the_cli(tmp_path, bundle, catalogue, cli_reports, capsys):
    """The reference with trained results, through the zip's run_autograder
    (``python -m autograder gradescope-run SUBMISSION --bundle ZIP``): results.json follows
    Gradescope's specification, hidden checks are shown after publication only, the child runs as nobody."""
    from autograder.tests.test_trained import noisy_labels, write_predictions
    submission = tmp_path / "submission"
    write_predictions(submission / "outputs", "fcn32s", noisy_labels(0.2))
    write_predictions(submission / "outputs", "fcn8s", noisy_labels(0.2))
    _as_notebook(catalogue / "reference" / "fcn_segmentation" / "fcn_segmentation.py", submission,
                 "fcn_segmentation.ipynb")
    out = tmp_path / "results.json"
    assert main(["gradescope-run", str(submission), "--bundle", str(bundle), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert f"score: {results['score']} of {sum(i.points for i in RUBRIC)}" in printed and f"wrote {out}" in printed
    assert printed.count(" passed ") == len(RUBRIC)
    validate_results(results)
    tests = {t["name"]: t for t in results["tests"]}
    assert results["score"] == sum(i.points for i in RUBRIC)
    assert [t["score"] for t in results["tests"]] == [i.points for i in RUBRIC]
    for item in RUBRIC:
        assert tests[item.title]["visibility"] == ("after_published" if item.hidden else "visible")
    assert {i.name for i in RUBRIC if i.hidden} == {"fcn32s_equivalence", "fcn8s_equivalence"}
    assert "unprivileged-user" in results["output"] and results["stdout_visibility"] == "hidden"
    cli = per_item(cli_reports["reference"])
    assert all(cli[name][0] == ITEMS[name].points for name in cli if not name.endswith("_miou"))


def memory_cgroup(limit_mb: int):
    """A memory cgroup (v1, or v2) of ``limit_mb`` that this process may create, else None."""
    for base, files in ((Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")),
                        (Path("/sys/fs/cgroup"), ("memory.max", "memory.swap.max"))):
        group = base / f"fcnkit-test-{os.getpid()}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / files[0]).write_text(str(limit_mb * 2**20))
            if (group / files[1]).exists():
                (group / files[1]).write_text(str(limit_mb * 2**20) if "memsw" in files[1] else "0")
            return group
        except OSError:
            group.rmdir()
    return None


def oom_kills(group: Path) -> int:
    for name in ("memory.oom_control", "memory.events"):
        if (group / name).exists():
            return int(next(l.split()[1] for l in (group / name).read_text().splitlines() if l.startswith("oom_kill ")))
    return -1


# Private memory of a fresh interpreter after `import numpy, torch` with the CPU-only build of torch that
# setup.sh installs on Gradescope (torch 2.13.0+cpu, the CPU build in this machine's wheel cache, 2026-11-24:
# `python -c "import numpy, torch"` in a virtual environment holding it, Pss_Anon of /proc/self/smaps_rollup).
CPU_TORCH_IMPORT_MB = 142


def torch_import_mb() -> int:
    code = ("import numpy, torch\nprint(next(int(l.split()[1]) // 1024 for l in open('/proc/self/smaps_rollup') "
            "if l.startswith('Pss_Anon')))")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _as_notebook(script: Path, folder: Path, name: str = "as_notebook.ipynb") -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(script.read_text())])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(nb, path)
    return path


# One correct and two failing submissions: a failing structure with hidden equivalence items (fc6_kernel_3 loses
# six items), and a failing VGG layer table. Every catalogue submission's verdicts are compared item by item
# between the sandbox and the in-process judgements (test_grading.py::test_the_whole_catalogue_through_the_sandbox):
# a front-end's path needs only the submissions that take each of its branches.
SAMPLE = ("reference", "fc6_kernel_3", "fcn8s_no_ceil_mode")


def run_autograder_in(group: Path | None, root: Path) -> tuple[dict, int]:
    """``root/run_autograder`` as Gradescope runs it, inside the memory cgroup ``group`` (None: none);
    results.json and the cgroup's count of processes the kernel killed for memory (0 without one)."""
    enter = (f"echo $$ > {group / 'cgroup.procs'} && " if group else "") + f"exec {root / 'run_autograder'}"
    try:
        result = subprocess.run(["bash", "-c", enter], env={**os.environ, "AUTOGRADER_ROOT": str(root)},
                                capture_output=True, text=True, timeout=600)
        kills = oom_kills(group) if group else 0
    finally:
        for _ in range(50 if group else 0):  # the cgroup goes once its last process has
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text()), kills


@pytest.mark.slow
def test_run_autograder_gives_the_clis_verdicts_on_the_catalogue_in_gradescopes_768_mb(
        tmp_path, bundle, catalogue, cli_reports):
    """Item for item the CLI's verdicts, through the zip's run_autograder; the reference graded in a memory
    cgroup (page cache included) of Gradescope's default 768 MB plus what this machine's build of torch takes
    at import beyond the CPU build Gradescope gets (the CUDA build here: about 140 MB more), where one can be
    made: the kernel killed nothing."""
    limit = 768 + max(0, torch_import_mb() - CPU_TORCH_IMPORT_MB)
    group = memory_cgroup(limit)
    if group is None:
        warnings.warn("no memory cgroup can be made here (needs root and a writable cgroup file system): "
                      "the reference is graded without Gradescope's 768 MB")

    def one(name):
        root = gradescope.lay_out(tmp_path / name / "autograder", bundle, catalogue / name / "fcn_segmentation")
        return name, run_autograder_in(group if name == "reference" else None, root)
    with ThreadPoolExecutor(2) as pool:
        graded = dict(pool.map(one, SAMPLE))
    assert graded["reference"][1] == 0, "the kernel killed a process of the reference's grading for memory"
    full = cli_reports["reference"]["score"]
    assert [cli_reports[name]["score"] < full for name in SAMPLE] == [False, True, True]
    for name, (result, _) in graded.items():
        validate_results(result)
        got = {t["name"]: (t["score"], t.get("status", "not graded")) for t in result["tests"]}
        want = {ITEMS[item].title: verdict for item, verdict in per_item(cli_reports[name]).items()}
        # mIoU items: without predictions, "not graded" by the CLI (no dataset) and failed on Gradescope (dataset in
        # the zip, nothing submitted)
        for item in ("fcn32s_miou", "fcn8s_miou"):
            assert got.pop(ITEMS[item].title) == (0, "failed") and want.pop(ITEMS[item].title) == (0, "not graded")
        assert got == want, name
    assert graded["reference"][0]["score"] == sum(i.points for i in RUBRIC if not i.needs_weights)


@pytest.mark.slow
def test_run_autograder_explains_a_submission_without_a_notebook(tmp_path, bundle):
    notes = tmp_path / "notes.txt"
    notes.write_text("my answers")
    results = run_autograder(tmp_path, bundle, notes)
    validate_results(results)
    assert results["score"] == 0 and "Submit one notebook, fcn_segmentation.ipynb" in results["output"]


# ----------------------------------------------------------------------------------- pytest
@pytest.mark.slow
def test_pytest_gives_the_clis_verdicts_on_the_catalogue(tmp_path, catalogue, cli_reports):
    sample = tmp_path / "class"
    for name in SAMPLE:
        shutil.copytree(catalogue / name, sample / name)
    junit = tmp_path / "results.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "autograder", "--submission", str(sample),
                             "--grading-seed", "7", f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert result.returncode == 1, result.stdout[-3000:]  # the mutants fail some items
    cases = ET.parse(junit).getroot().iter("testcase")
    got = {}
    for case in cases:
        student, item = case.get("name").removeprefix("test_rubric_item[").removesuffix("]").rsplit("-", 1)
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = "failed" if case.find("failure") is not None else "not graded" \
            if case.find("skipped") is not None else "passed"
        assert int(props["points"]) == ITEMS[item].points
        got.setdefault(student, {})[item] = (int(props["score"]), outcome)
    assert set(got) == set(SAMPLE)
    for student in SAMPLE:
        assert got[student] == per_item(cli_reports[student]), student
    assert f"{2 * len(SAMPLE)} skipped" in result.stdout.strip().splitlines()[-1]  # the mIoU items, no dataset


def test_pytest_reports_a_submission_without_a_model_item_by_item(tmp_path):
    """The inner loop's run of the pytest front-end (the catalogue's comparison above is slow): real pytest,
    one submission that defines no model, every structural item failed with the grader's message, the
    mIoU items skipped (no dataset); and the import path nbgrader's stored hidden cells use."""
    from autograder.checks import check_in_process
    from autograder.judging.inprocess import check_in_process as judged_in_process
    assert check_in_process is judged_in_process
    (tmp_path / "alice.py").write_text("x = 1\n")
    junit = tmp_path / "results.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "autograder", "--submission",
                             str(tmp_path / "alice.py"), f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:]
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {f"test_rubric_item[alice-{item.name}]" for item in RUBRIC}
    for item in RUBRIC:
        case = cases[f"test_rubric_item[alice-{item.name}]"]
        if item.needs_weights:
            assert case.find("skipped") is not None, item.name
        else:
            assert "No class named FCN" in case.find("failure").get("message"), item.name
