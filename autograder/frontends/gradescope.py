"""Gradescope: the autograder zip, and what its ``run_autograder`` does.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once to build its image,
then, for each submission, ``/autograder/run_autograder`` as root with the student's files in
``/autograder/submission``; it reads ``/autograder/results/results.json``. The grader grades that one
submission as the CLI does (same worker, same sandbox and verdicts; the child runs as ``nobody``), with
one child at a time so that a run stays small, and writes Gradescope's results format.

    python -m autograder gradescope-bundle fcn_gradescope.zip --data data/cmp_facade   # the zip to upload
    python -m autograder gradescope-run fcn_segmentation.ipynb --bundle fcn_gradescope.zip  # try it locally
    python -m autograder gradescope-autograde /autograder                             # what run_autograder runs
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..reports.gradescope import failure, results

REPO = Path(__file__).resolve().parents[2]  # a clone's root (the bundle is built from a clone)
DATA_FOLDER = "data"  # in the bundle: the evaluation split's images and labels, when --data was given
# What the grader needs on Gradescope's Ubuntu image (the rest of requirements.txt is course tooling).
RUNTIME_REQUIREMENTS = ("torch", "torchvision", "numpy", "pillow", "matplotlib", "tqdm", "pyseccomp", "markdown-it-py",
                        "latex2mathml", "nh3")

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source, to build the autograder's image.
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -qq
# bubblewrap: the grader's namespaces layer (used when the container allows it); libseccomp2: its seccomp layer
apt-get install -y -qq python3 python3-pip python3-venv bubblewrap libseccomp2 >/dev/null
python3 -m venv /autograder/venv
# torch for the CPU only: Gradescope's machines have no GPU
/autograder/venv/bin/pip install -q --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
/autograder/venv/bin/pip install -q --no-deps wheels/*.whl
# the interpreter and its packages must be readable by the unprivileged user the child runs as
chmod -R a+rX /autograder/venv /autograder/source
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this as root for each submission. AUTOGRADER_ROOT (default /autograder) holds
# submission/ and results/; the tests point it at a folder of their own.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="$ROOT/venv/bin/python"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
cd "$ROOT/source"
exec "$PYTHON" -m autograder gradescope-autograde "$ROOT"
"""


def _requirements() -> str:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        spec = line.split("#")[0].strip()
        name = spec.split("=")[0].split(">")[0].split("<")[0].strip().lower()
        if name in RUNTIME_REQUIREMENTS:
            pins[name] = spec
    return "\n".join(pins[name] for name in RUNTIME_REQUIREMENTS) + "\n"


def _evaluation_data(root: Path, split: str = "test") -> dict[str, Path]:
    """The files of the evaluation split (image and label: the labels are read beside their image),
    keyed by their name in the bundle, with split files that list them as the test split."""
    from fcnkit.splits import cmp_splits, label_path
    files = {}
    for jpg in cmp_splits(root)[split]:
        for path in (jpg, label_path(jpg)):
            files[f"{DATA_FOLDER}/{jpg.parent.name}/{path.name}"] = path
    return files


def bundle(out: Path, data: Path | None = None) -> list[str]:
    """Write the autograder zip to ``out``; returns its file names. ``data``: a dataset folder whose
    test split (76 images and labels) goes into the zip, so that Gradescope grades the mIoU items
    from the predictions students submit; without it they are reported as not graded."""
    from fcnkit.splits import cmp_splits
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp)
        for project in (REPO, REPO / "autograder"):
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(project)], check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")  # an interrupted build never leaves a zip that looks whole
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for name, text in (("setup.sh", SETUP), ("run_autograder", RUN), ("requirements.txt", _requirements())):
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if name != "requirements.txt" else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, text)
            for wheel in sorted(wheels.glob("*.whl")):
                z.write(wheel, f"wheels/{wheel.name}")
            if data is not None:
                ids = [p.stem for p in cmp_splits(data)["test"]]
                for name, path in _evaluation_data(data).items():
                    z.write(path, name)
                for split, listed in (("train", []), ("val", []), ("test", ids)):
                    z.writestr(f"{DATA_FOLDER}/splits/{split}.txt", "".join(f"{i}\n" for i in listed))
            names = z.namelist()
        partial.replace(out)
    return names


def _submission(folder: Path) -> Path:
    notebooks = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    named = [p for p in notebooks if p.name == "fcn_segmentation.ipynb"]
    if len(named) == 1 or len(notebooks) == 1:
        return (named or notebooks)[0]
    scripts = sorted(folder.rglob("*.py"))
    if not notebooks and len(scripts) == 1:
        return scripts[0]
    found = ", ".join(p.name for p in notebooks) or "no notebook"
    raise FileNotFoundError(f"Submit one notebook, fcn_segmentation.ipynb, with outputs/ beside it (found: {found}).")


def run(root: Path) -> dict:
    """Grade ``root/submission`` and write ``root/results/results.json``; returns the results."""
    from ..atomic import write_text
    from ..judging.miou import LabelSet
    from ..pipeline import GraderError, Limits, grade_submission, grading_run
    start = time.perf_counter()
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = _submission(root / "submission")
    except FileNotFoundError as err:
        write_text(out, json.dumps(failure(str(err), time.perf_counter() - start), indent=2) + "\n")
        return json.loads(out.read_text(encoding="utf-8"))
    data = root / "source" / DATA_FOLDER
    labels = LabelSet(data) if (data / "splits" / "test.txt").is_file() else None
    limits = Limits.sharing_cores(1)
    with grading_run(limits=limits, hidden=[root / "source", root / "submission"], jobs=1, labels=labels,
                     low_memory=True) as grading:  # Gradescope's default is 768 MB
        try:
            report = grade_submission("student", path, limits=limits, run=grading)
        except GraderError as err:  # the grader's fault: no score at all rather than the student's 0
            result = failure(f"not graded: {err}. This is a fault of the grader, not of your submission: your "
                             "instructor can rerun the autograder.", time.perf_counter() - start)
            del result["score"]
            write_text(out, json.dumps(result, indent=2) + "\n")
            raise
    result = results(report, time.perf_counter() - start)
    write_text(out, json.dumps(result, indent=2) + "\n")
    return result



def bundle_command(out: Path, data: Path | None) -> int:
    """``python -m autograder gradescope-bundle OUT [--data DIR]``."""
    from fcnkit.splits import DataError
    if out.suffix != ".zip":
        print(f"error: {out}: the autograder bundle is a .zip", file=sys.stderr)
        return 2
    data = data or (Path(os.environ["FCNKIT_DATA"]) if os.environ.get("FCNKIT_DATA") else None)
    try:
        names = bundle(out, data)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    images = sum(n.endswith(".jpg") for n in names)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): setup.sh, run_autograder, "
          f"{sum(n.endswith('.whl') for n in names)} wheels, "
          + (f"{images} test images with their labels" if images else "no dataset (mIoU items not graded)"))
    print("upload it in Gradescope: Assignment > Configure Autograder > Zip file upload (Ubuntu 22.04 base image)")
    return 0


def run_command(root: Path) -> int:
    """``python -m autograder gradescope-autograde ROOT``: what the zip's run_autograder runs."""
    from ..pipeline import GraderError
    try:
        print(json.dumps(run(root), indent=1))
    except GraderError as err:
        print(f"error: not graded: {err} (results.json says so, without a score)", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- the zip's run_autograder, run here
def lay_out(root: Path, bundle_zip: Path, submission: Path) -> Path:
    """Lay ``root`` out as Gradescope's ``/autograder``: ``source/`` (the zip, unpacked, its modes
    kept), ``run_autograder`` (copied from ``source/``, as Gradescope does), ``submission/`` and
    ``results/``. Returns ``root``.

    Args:
        root: an empty or missing folder.
        bundle_zip: the zip of ``gradescope-bundle``.
        submission: what a student uploads: a file (the notebook), or a folder whose contents
            (the notebook and ``outputs/``) go into ``submission/``.
    """
    with zipfile.ZipFile(bundle_zip) as z:
        z.extractall(root / "source")
        for info in z.infolist():  # zipfile drops the mode bits
            os.chmod(root / "source" / info.filename, info.external_attr >> 16 or 0o644)
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    if submission.is_dir():
        shutil.copytree(submission, root / "submission")
    else:
        (root / "submission").mkdir()
        shutil.copy(submission, root / "submission" / submission.name)
    (root / "results").mkdir()
    return root


def run_autograder(root: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``root/run_autograder`` as Gradescope does, with ``AUTOGRADER_ROOT`` set to ``root``
    (it writes ``root/results/results.json``); its output is captured.

    Args:
        root: a folder laid out by :func:`lay_out`.
        timeout: seconds before it is stopped (subprocess.TimeoutExpired).
    """
    return subprocess.run([str(root / "run_autograder")], env={**os.environ, "AUTOGRADER_ROOT": str(root)},
                          capture_output=True, text=True, timeout=timeout)


def summary(result: dict) -> str:
    """results.json in a few lines: the score of the tests' maximum, then each test."""
    tests = result.get("tests", [])
    lines = [f"score: {result.get('score', 'none (not graded)')} of {sum(t['max_score'] for t in tests):g}"]
    lines += [f"  {t['score']:>4g} of {t['max_score']:<4g} {t.get('status', 'not graded'):<10} {t['name']}"
              for t in tests]
    return "\n".join(lines + ([result["output"]] if result.get("output") else []))


def local_run_command(submission: Path, bundle_zip: Path | None, data: Path | None, out: Path | None) -> int:
    """``python -m autograder gradescope-run SUBMISSION [--bundle ZIP] [--data DIR] [--out FILE]``:
    the bundle's ``run_autograder`` on SUBMISSION in a temporary folder laid out as ``/autograder``
    (the bundle built there first when none is given); prints the results, or writes them to ``out``.

    Args:
        submission: a notebook (or .py) file, or a folder with it and ``outputs/``.
        bundle_zip: the zip of ``gradescope-bundle``; None builds one (with ``data``'s test split).
        data: the dataset for a bundle built here (default $FCNKIT_DATA).
        out: where results.json goes (default: printed).
    """
    from ..isolation import tempdirs
    if not submission.exists():
        print(f"error: {submission}: no such file or folder", file=sys.stderr)
        return 2
    scratch = tempdirs.make("fcnkit-gradescope-")
    try:
        os.chmod(scratch, 0o755)  # run_autograder's child runs as nobody
        if bundle_zip is None:
            bundle_zip = scratch / "fcn_gradescope.zip"
            if bundle_command(bundle_zip, data) != 0:
                return 2
        done = run_autograder(lay_out(scratch / "autograder", bundle_zip, submission))
        results_json = scratch / "autograder" / "results" / "results.json"
        if not results_json.is_file():
            print(f"error: run_autograder wrote no results.json (exit {done.returncode}):\n{done.stderr[-3000:]}",
                  file=sys.stderr)
            return 1
        text = results_json.read_text(encoding="utf-8")
        if out is not None:
            from ..atomic import write_text
            write_text(out, text)
        print(summary(json.loads(text)) + (f"\nwrote {out}" if out is not None else ""))
        return 0 if done.returncode == 0 else 1
    finally:
        tempdirs.remove(scratch)
