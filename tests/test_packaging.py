"""Students never get the solution: the wheel they install (fcnkit) holds no reference, catalogue or
hidden check, and the release notebook imports nothing from the grader."""
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "notebooks" / "release" / "fcn_segmentation" / "fcn_segmentation.ipynb"
# Text that only the solution, the catalogue or the hidden checks contain.
# The reference's forward code, the catalogue and the grader's own runner. (The mIoU thresholds and the
# hints that name a departing stage are public on purpose: the notebook states and gives them.)
SOLUTION_MARKERS = ("31:31 +", "19:19 +", "5:5 + upscore2", "9:9 + upscore_pool4", "MUTANTS", "check_in_process",
                    "reference.MODELS")
# What only the grader's child runs (autograder/isolation/runtime: the record codec, the steps, the worker's loop):
# it reaches the child through the runtime folder, never through the wheel.
CHILD_ONLY = ("def encode(", "def decode(", "class RecordError", "def warm_up_meta(", "def run_step(",
              "class WorkerServer", "def observe_steps(")


@pytest.fixture(scope="module")
def student_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, cwd=out)
    [wheel] = out.glob("fcnkit-*.whl")
    return wheel


def test_student_wheel_holds_no_solution(student_wheel):
    with zipfile.ZipFile(student_wheel) as wheel:
        names = wheel.namelist()
        packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
        assert packages == {"fcnkit", "dataset_tools"}
        for name in names:
            if name.endswith(".py"):
                text = wheel.read(name).decode()
                found = [m for m in SOLUTION_MARKERS if m in text]
                assert not found, f"{name} holds {found}"
                assert "class FCN8s" not in text and "class FCN32s" not in text, name
                assert not [d for d in CHILD_ONLY if d in text], f"{name} holds the child's runtime"
    assert "fcnkit/checks.py" in names and "fcnkit/_grading/observe.py" in names  # the student-side checks are there
    # exactly the modules of the tree: none left over in build/ from before a module moved (setuptools keeps them)
    tracked = subprocess.run(["git", "ls-files", "fcnkit", "dataset_tools"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode == 0:
        assert {n for n in names if n.endswith(".py")} == {n for n in tracked.stdout.split() if n.endswith(".py")}
    assert not [n for n in names if Path(n).name in ("codec.py", "steps.py", "child.py", "confine.py")], names


def imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_release_notebook_imports_nothing_from_the_grader():
    cells = json.loads(RELEASE.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    modules = set().union(*(imports("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
                            for src in code))
    assert not [m for m in modules if m.split(".")[0] == "autograder"], modules
    assert "fcnkit.checks" in modules


def test_fcnkits_face_is_what_the_release_imports():
    """``fcnkit.__all__`` is exactly what the release notebook imports of fcnkit (its modules and names),
    and each name is the object of the module that defines it."""
    import fcnkit
    imported = set()
    for cell in json.loads(RELEASE.read_text())["cells"]:
        if cell["cell_type"] == "code":
            source = "\n".join(line for line in "".join(cell["source"]).splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fcnkit":
                    imported |= {(node.module, alias.name) for alias in node.names}
    assert imported and {name for _, name in imported} == set(fcnkit.__all__), sorted(imported)
    assert not [m for m, _ in imported if m.startswith("fcnkit._")], "the release reaches fcnkit's internals"
    for module, name in imported:
        home = __import__(module, fromlist=[name])
        assert getattr(fcnkit, name) is getattr(home, name), (module, name)


def test_the_childs_runtime_holds_no_solution(tmp_path):
    """What the sandboxed child runs (its runtime: child.py, codec.py, steps.py; confine.py; fcnkit) is all it can
    read of ours, and its runtime is there, first on its import path (the wheel does not have it)."""
    from autograder import isolation
    runtime = isolation.prepare(tmp_path)
    runtime.close()
    files = [p for p in runtime.folder.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"child.py", "codec.py", "steps.py", "confine.py", "observe.py", "records.py"}
    runtime_code = "".join((runtime.folder / n).read_text() for n in ("child.py", "codec.py", "steps.py"))
    assert [d for d in CHILD_ONLY if d in runtime_code] == list(CHILD_ONLY)
    assert runtime.sys_path[0] == str(runtime.folder)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")  # the reference activations are binary
        assert not [m for m in SOLUTION_MARKERS if m in text], path
    assert str(REPO) not in runtime.sys_path and not any(p.startswith(str(REPO / "autograder")) for p in runtime.read)


def test_the_student_package_is_publishable(student_wheel):
    """Metadata an index shows (licence, long description, classifiers) and twine's own check."""
    with zipfile.ZipFile(student_wheel) as wheel:
        [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        text = wheel.read(metadata).decode()
        assert any(n.endswith("licenses/LICENSE") for n in wheel.namelist())
    assert "License-Expression: MIT AND CC-BY-SA-4.0" in text and "Description-Content-Type: text/markdown" in text
    assert "holds no solution and no grader" in text  # the long description: docs/fcnkit.md
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(student_wheel)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# What only fcnkit brings into a Jupyter environment with torch (matplotlib and its own dependencies, tqdm):
# left out of the fresh environment, so that the notebook's setup cell must install them with the wheel.
FCNKIT_ONLY = ("matplotlib", "mpl_toolkits", "pylab", "contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing",
               "tqdm")
# The machine's own wheel folders: pip installs from them with no index (no network at test time).
LOCAL_WHEELS = [p for p in (Path("/opt/wheels"), Path("/opt/pypi/files"), Path("/opt/pypi-more/files")) if p.is_dir()]


def offline_wheels_for(names) -> bool:
    """Whether the local wheel folders hold a wheel of each distribution in ``names``."""
    found = {w.name.split("-")[0].lower() for folder in LOCAL_WHEELS for w in folder.glob("*.whl")}
    return all(name in found for name in names)


def fresh_environment(root: Path) -> Path:
    """A virtual environment without fcnkit, nor what only fcnkit brings (:data:`FCNKIT_ONLY`), its
    python returned. Its other packages (Jupyter's kernel, and torch: 5.5 GB installed) are this
    interpreter's, seen through a folder of links that leaves out fcnkit, the grader and those, so
    that pip finds torch installed and installs fcnkit and matplotlib alone."""
    import site
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    deps = root / "deps"
    deps.mkdir()
    ours = ("fcnkit", "__editable__", "autograder", "dataset_tools")
    for packages in site.getsitepackages():
        for entry in Path(packages).iterdir():
            distribution = re.split(r"[-.]", entry.name)[0].lower()  # matplotlib_inline (Jupyter's) stays
            if (not entry.name.startswith(ours) and distribution not in FCNKIT_ONLY
                    and entry.suffix != ".pth" and not (deps / entry.name).exists()):
                (deps / entry.name).symlink_to(entry)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "shared-deps.pth").write_text(f"{deps}\n")
    return python


def run_cells(folder: Path, python: Path, jupyter: Path, env: dict, until: str | None = None):
    """Execute the notebook's first code cell (``until``: every cell up to and including the one whose
    grade_id it is, errors kept as outputs) in ``folder`` with a kernel of ``python``."""
    nb = nbformat.read(folder / RELEASE.name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if until is None:
        nb.cells = code[:1]
    else:
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        nb.cells = nb.cells[:ids.index(until) + 1]
    spec = jupyter / "kernels" / "fresh"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "fresh", "language": "python", "env": env}))
    os.environ["JUPYTER_PATH"] = str(jupyter)
    try:
        NotebookClient(nb, timeout=600, kernel_name="fresh", allow_errors=until is not None,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        os.environ.pop("JUPYTER_PATH")
    return nb


@pytest.mark.slow
@pytest.mark.skipif(not offline_wheels_for(FCNKIT_ONLY[3:]), reason="no local wheels of matplotlib's dependencies")
def test_the_release_runs_from_a_fresh_environment_to_its_first_check(tmp_path):
    """The release, from a folder holding only the notebook and the wheel, run in a fresh virtual
    environment that lacks fcnkit and matplotlib: the setup cell installs the wheel (and matplotlib,
    offline, from the machine's wheel folders) before ``%matplotlib inline`` needs it, and every cell
    runs up to the first check, whose failure on the unfinished model is two lines, the verdict and its
    message. Without the wheel beside it, the setup cell says which file to put where."""
    sys.path.insert(0, str(REPO / "notebooks"))
    import build
    built = build.generate_release(tmp_path / "course")
    build.build_wheel(built)
    release = tmp_path / "student"
    shutil.copytree(built, release)
    assert sorted(p.name for p in release.iterdir()) == sorted([RELEASE.name, build.wheel_name()])
    python = fresh_environment(tmp_path)
    alone = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's own packages, not this checkout
    lacks = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('fcnkit'), "
                                               "u.find_spec('matplotlib'))"],
                           capture_output=True, text=True, check=True, cwd=release, env=alone)
    assert lacks.stdout.strip() == "None None"
    env = {"FCNKIT_SMOKE": "1", "PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": " ".join(map(str, LOCAL_WHEELS))}
    nb = run_cells(release, python, tmp_path / "jupyter", env, until="fcn32s_vgg_layers")
    errors = [(i, o) for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.output_type == "error"]
    assert [i for i, _ in errors] == [len(nb.cells) - 1], errors  # the check cell alone, on the unfinished model
    assert errors[0][1].traceback == ["FAIL fcn32s_vgg_layers", "CheckFailed: FCN32s(n_class=12) raised "
                                      "NotImplementedError. Finish the parts marked YOUR CODE HERE."], errors[0][1].traceback
    text = "".join(o.get("text", "") for o in next(c for c in nb.cells if c.cell_type == "code").outputs)
    assert "mode: smoke" in text and "sample_data" in text
    where = subprocess.run([str(python), "-c", "import fcnkit, matplotlib; print(fcnkit.__version__, fcnkit.__file__, "
                                               "matplotlib.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=alone).stdout
    assert where.startswith(build.wheel_name().split("-")[1]) and where.count(str(tmp_path / "venv")) == 2

    (release / build.wheel_name()).rename(tmp_path / build.wheel_name())
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "fcnkit"], check=True, env=alone)
    with pytest.raises(CellExecutionError, match=f"{build.wheel_name()} is not in .*: it came with this notebook"):
        run_cells(release, python, tmp_path / "jupyter", env)
