"""Check a submission before you hand it in, outside Jupyter, as the grader checks it.

    python -m fcnkit check fcn_segmentation.ipynb                     # the structural items
    python -m fcnkit check fcn_segmentation.ipynb --data data/cmp_facade   # and the saved predictions
    python -m fcnkit check my_models.py

It takes from the notebook (or .py file) what the grader takes, by the same rule (:mod:`fcnkit._grading.extract`):
imports, functions, classes, constants and the assignments they use, nothing of the training cells;
runs them in this process; then checks every rubric item with the
grader's own judgements and messages, printing one line per item (``PASS fcn8s_head: ...``,
``FAIL fcn8s_equivalence: ...``, ``NOT CHECKED fcn8s_miou: ...``). The equivalence items compare with
the reference's activations for fcnkit's public seed; the grader draws a fresh seed for every run.
The mIoU items are checked when the predictions the notebook saves (``outputs/`` beside the
notebook, or ``--predictions``) and the dataset (``--data`` or ``FCNKIT_DATA``) are there. Exits 1
when an item fails, 2 when the file cannot be read.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._grading.extract import NotANotebook, build_namespace, definitions, notebook_code_cells
from ._grading.verdicts import Status
from .splits import DATA_ENV

MAX_SUBMISSION_BYTES = 100 * 2**20  # what the grader reads of a submission


def read_cells(path: Path) -> list[tuple[int, str]]:
    """The code cells of a notebook, or a ``.py`` file as one cell; ValueError says what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SUBMISSION_BYTES + 1)
    except OSError as err:
        raise ValueError(f"{path} cannot be read ({err.strerror or err}).") from None
    if len(data) > MAX_SUBMISSION_BYTES:
        raise ValueError(f"{path.name} is over {MAX_SUBMISSION_BYTES // 2**20} MB, which the grader refuses unread; "
                         f"clear the outputs of large figures (Edit > Clear outputs) and save it again.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path.name} is not UTF-8 text ({err}).") from None
    if path.suffix != ".ipynb":
        return [(0, text)]
    try:
        return notebook_code_cells(text)
    except NotANotebook as err:
        raise ValueError(f"{path.name} is not a valid notebook ({err}); save it again from Jupyter.") from None


def check(path: Path, data: Path | None, predictions: Path | None, out=sys.stdout) -> int:
    extracted = definitions(read_cells(path), path.name)
    from . import checks  # torch, once the file is known to be readable
    print(f"fcnkit check {path.name}: {len(extracted.chunks)} definitions (training cells are not run, as in the "
          f"grader)", file=out)
    namespace, notes = build_namespace(extracted)
    for note in notes:
        print(f"note: {note}", file=out)
    verdicts = checks.check_all(namespace, predictions=predictions, data=data)
    for v in verdicts:
        print(f"{v.status.word} {v.name}: {v.message}", file=out)
    failed = [v for v in verdicts if v.status is Status.FAILED]
    unchecked = [v for v in verdicts if v.status is Status.NOT_CHECKED]
    checked = sum(v.max_score for v in verdicts if v.graded)
    passed = sum(v.score for v in verdicts)
    summary = f"{passed} of the {checked} points checked here pass"
    if unchecked:
        summary += (f"; not checked: {', '.join(v.name for v in unchecked)} "
                    f"({sum(v.max_score for v in unchecked)} points, scored by the grader)")
    print(summary + ".", file=out)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fcnkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("check", help="check a notebook or .py file as the grader does")
    one.add_argument("path", type=Path, help="the notebook (.ipynb) or a .py file with FCN32s and FCN8s")
    one.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                     help=f"the dataset, to score the saved predictions (default: ${DATA_ENV})")
    one.add_argument("--predictions", type=Path,
                     help="the folder of the saved predictions (default: outputs/ beside the notebook)")
    args = parser.parse_args(argv)
    try:
        return check(args.path, args.data, args.predictions or args.path.parent / "outputs")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
