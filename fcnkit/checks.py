"""The student-side checks: the student's model observed in the student's own process (the notebook,
``python -m fcnkit check``) and judged by the grader's own functions (:mod:`fcnkit._grading.judges`), so that
all PASS here means every structural point there. The equivalence items compare with the reference's
activations for :data:`~fcnkit._grading.judges.PUBLIC_SEED`, shipped in fcnkit (``reference_stages.npz``,
written by ``notebooks/build.py`` from the reference solution); the grader draws a fresh seed per
run, so matching the public one without computing it earns nothing. The rubric's names, titles and
points come from ``rubric.json``, written by the same build from the grader's rubric."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ._grading import observe
from ._grading.extract import build_namespace, definitions
from ._grading.dropout import judge_dropout
from ._grading.judges import (EQUIVALENCE_SIZE, PUBLIC_SEED, STRUCTURAL, CheckFailed,
                              judge_copy_params, judge_equivalence)
from ._grading.observe import ObservationError
from ._grading.observers import OBSERVERS, Setup
from ._grading.seeded import PristineVGG, maps_repeated_weights, seeded_copy
from ._grading.stages import StageValues
from ._grading.verdicts import CheckResult, Status
from .data import N_CLASS
from .predictions import PredictionsError, miou_verdict, report_miou, score_saved
from .spec import MODEL_CLASSES

HERE = Path(__file__).resolve().parent
RUBRIC_FILE = HERE / "rubric.json"
REFERENCE_FILE = HERE / "reference_stages.npz"


@dataclass(frozen=True)
class PublicItem:
    """A rubric item as students see it (the grader's table, less its judgements)."""
    name: str
    model: str
    points: int
    title: str
    observes: str  # "structure", "outputs", "copy_params" or "predict"
    judged_by: str  # a key of JUDGEMENTS; "" for an item the grader alone judges
    needs_weights: bool = False


@functools.cache
def rubric() -> tuple[PublicItem, ...]:
    """The graded items, in the grader's order."""
    return tuple(PublicItem(**item) for item in json.loads(RUBRIC_FILE.read_text(encoding="utf-8"))["items"])


@functools.cache
def reference_stages(kind: str) -> dict[str, StageValues]:
    """The reference's activations for the public seed, at the equivalence check's input."""
    with np.load(REFERENCE_FILE, allow_pickle=False) as stored:
        return read_stages(stored, kind)


def read_stages(stored, kind: str) -> dict[str, StageValues]:
    """``{stage: StageValues}`` of ``kind`` from an opened reference_stages.npz."""
    meta = json.loads(str(stored["meta"]))
    if (meta["seed"], tuple(meta["size"])) != (PUBLIC_SEED, EQUIVALENCE_SIZE):
        raise RuntimeError(f"{REFERENCE_FILE.name} was made for seed {meta['seed']}, size {meta['size']}; "
                           f"rebuild it: python notebooks/build.py")
    return {stage: StageValues(tuple(shape), scale, stored[f"{kind}/{stage}"])
            for stage, (shape, scale) in meta["stages"][kind].items()}


# ----------------------------------------------------------------------------------- in the notebook
def graded_namespace(namespace: dict) -> tuple[dict, list[str]]:
    """The namespace the grader builds of the session whose globals are ``namespace``, and its notes:
    the cells the kernel ran (:func:`session_cells`) through the grader's rule (:mod:`fcnkit._grading.extract`),
    only imports, definitions and the assignments they use run again, nothing of a training cell;
    ``namespace`` itself, without notes, when it holds no cells (plain Python: a namespace the
    caller built).

    Args:
        namespace: ``globals()`` of a notebook, or a namespace of definitions.
    """
    cells = session_cells(namespace)
    return build_namespace(definitions(cells, "the session")) if cells else (namespace, [])


def session_cells(namespace: dict) -> list[tuple[int, str]]:
    """``(execution count, source)`` of every cell an IPython kernel ran, as typed (magics and all, as
    the saved notebook holds them), from its history; [] outside IPython.

    Args:
        namespace: ``globals()`` of the kernel (IPython puts ``get_ipython`` and ``_ih`` there).
    """
    shell = namespace.get("get_ipython")
    typed = getattr(getattr(shell(), "history_manager", None), "input_hist_raw", None) if callable(shell) else None
    history = typed if isinstance(typed, list) else namespace.get("_ih")
    if not isinstance(history, list):
        return []
    return [(n, source) for n, source in enumerate(history) if n and isinstance(source, str) and source.strip()]


def build_model(kind: str, namespace: dict, n_class: int = N_CLASS, default_init: bool = True) -> nn.Module:
    """Build ``FCN32s`` / ``FCN8s`` (eval mode) as the grader does, with its message when that fails.
    ``default_init=False`` skips torch's random initialisation of convolutions (for checks that
    look at shapes, or overwrite the weights)."""
    try:
        return observe.build(namespace, kind, n_class, default_init)
    except ObservationError as err:
        raise CheckFailed(str(err), err.diagnosis) from None


def _structural(judge):
    return lambda record, kind, n_class: judge(record, n_class)


# The judgements students run, by the key each rubric item names (``judged_by``): the record observed of the
# student's model (observe_step, the item's ``observes``), the model's kind and the number of classes -> a
# success message; CheckFailed with what to fix. The mIoU items ("miou") are judged from saved predictions.
JUDGEMENTS = {
    **{key: _structural(judge) for key, judge in STRUCTURAL.items()},
    "equivalence": lambda record, kind, n_class: judge_equivalence(record, reference_stages(kind)),
    "copy_params": lambda record, kind, n_class: judge_copy_params(record, seeded_copy(PUBLIC_SEED)),  # what a correct copy leaves
    "dropout": lambda record, kind, n_class: judge_dropout(record),
}


def item_named(name: str) -> PublicItem | None:
    """The rubric item ``name`` as this fcnkit knows it; None for one it does not know (an item an
    instructor added to the rubric after this fcnkit was built: the grader alone checks it)."""
    return next((item for item in rubric() if item.name == name), None)


def _judged_here(item: PublicItem | None) -> bool:
    """Whether students run ``item``'s judgement (its key in JUDGEMENTS, or the mIoU's); an item naming a
    judgement that does not exist is an error in the rubric, not an item the grader alone checks."""
    if item is None:
        return False
    if item.judged_by and item.judged_by != "miou" and item.judged_by not in JUDGEMENTS:
        raise ValueError(f"rubric item {item.name!r} is judged_by {item.judged_by!r}, which fcnkit.checks.JUDGEMENTS "
                       f"does not have: add it there, or give the item judged_by=\"\" (the grader's alone)")
    return bool(item.judged_by)


@functools.cache
def _public_vgg() -> PristineVGG:
    return PristineVGG(PUBLIC_SEED)


def _seeded_vgg():
    """The seeded VGG-16 to copy from: one kept for every check where its weights are mapped
    memory (4 MB), a fresh one each time elsewhere (550 MB, not kept in the student's kernel)."""
    return _public_vgg().get() if maps_repeated_weights() else None


def observe_step(step: str, kind: str, namespace: dict, n_class: int = N_CLASS):
    """What the grader's child observes for ``step`` (an item's ``observes``: a row of
    :data:`fcnkit._grading.observers.OBSERVERS`), observed here, at the public seed; raises CheckFailed when the
    model cannot be built or run."""
    if step not in OBSERVERS or step == "predict":  # predictions are judged from the saved files
        raise ValueError(f"no student-side observation {step!r}")
    setup = Setup(seed=PUBLIC_SEED, n_class=n_class, vgg=_seeded_vgg() if step == "copy_params" else None)
    try:
        return OBSERVERS[step](namespace, kind, setup)
    except ObservationError as err:
        raise CheckFailed(str(err), err.diagnosis) from None


def judge(name: str, record, n_class: int = N_CLASS) -> str:
    """The grader's verdict on ``record`` (from :func:`observe_step`) for rubric item ``name``."""
    item = item_named(name)
    if not _judged_here(item):
        raise KeyError(f"{name!r}: no student-side judgement (not in this fcnkit's rubric, or the grader's alone)")
    return JUDGEMENTS[item.judged_by](record, item.model, n_class)


def run_check(name: str, namespace: dict, n_class: int = N_CLASS, **kwargs) -> str | None:
    """The student-side check of rubric item ``name``: its success message, None for an item only
    the grader checks; raises CheckFailed with the grader's message. The mIoU items take the folder
    of the saved predictions and the dataset: ``predictions=..., data=...``."""
    item = item_named(name)
    if not _judged_here(item):
        return None  # a check of the grader's alone (e.g. one an instructor added to the rubric)
    if item.judged_by == "miou":
        try:
            result = score_saved(kwargs["predictions"], item.model, kwargs["data"], n_class)
        except PredictionsError as err:
            raise CheckFailed(str(err)) from None
        if not result.passed:
            raise CheckFailed(f"BELOW THRESHOLD: {miou_verdict(result)}")
        return miou_verdict(result)
    return judge(name, observe_step(item.observes, item.model, namespace, n_class), n_class)


def check(name: str, namespace: dict, n_class: int = N_CLASS, **kwargs) -> None:
    """Run the student-side check of a rubric item (e.g. ``check("fcn8s_head", globals())``): prints
    PASS with what was checked, or raises CheckFailed with what to fix, the grader's verdict and
    message, after the notes of the definitions that failed to run. It judges what the grader would
    see of the session (:func:`graded_namespace`), not its live globals. (It returns nothing, so that
    nbgrader reads no output value as partial credit.)"""
    item = item_named(name)
    if item is not None and item.judged_by == "miou":  # printed, not raised: a run of the notebook goes on to FCN-8s
        return report_miou(item.model, kwargs["predictions"], kwargs["data"], n_class)
    show_failures_plainly(namespace)
    graded, notes = graded_namespace(namespace)
    try:
        message = run_check(name, graded, n_class, **kwargs)
    except CheckFailed as err:
        for note in notes:
            print(f"note: {note}")
        err.item = name
        raise
    status, message = (Status.PASSED, message) if message else (
        Status.NOT_CHECKED, "checked by the grader only (no student-side check)")
    print(f"{status.word} {name}: {message}")


def show_failures_plainly(namespace: dict) -> None:
    """In an IPython kernel (``namespace`` is its globals), show a failing check as its verdict and
    message (``FAIL fcn32s_head``, then ``CheckFailed: ...``) instead of a traceback through fcnkit's frames. The cell still
    raises (nbgrader counts it as failed); other errors keep their traceback."""
    shell = namespace.get("get_ipython")
    shell = shell() if callable(shell) else None
    if shell is not None and hasattr(shell, "set_custom_exc") and CheckFailed not in shell.custom_exceptions:
        shell.set_custom_exc((CheckFailed,), _verdict_only)


def _verdict_only(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython's custom exception handler: it shows the verdict and the error's line (a kernel sends
    them as the cell's error output, which is what nbgrader reads) instead of a traceback."""
    item = getattr(value, "item", None)
    stb = [f"{Status.FAILED.word} {item}"] * bool(item) + [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def check_all(namespace: dict, n_class: int = N_CLASS, predictions=None, data=None) -> list[CheckResult]:
    """Every rubric item's verdict, as the grader judges it (the grader's own type: a NOT_CHECKED item is
    one this side cannot check, and scores nothing here): each observation made once and shared by the
    items judged from it (as in the grader). The mIoU items are checked when ``predictions`` (the
    folder the notebook saves them to) and ``data`` (the dataset) are given and the files are there.
    In a notebook it judges what the grader would see of the session (:func:`graded_namespace`)."""
    namespace = graded_namespace(namespace)[0]
    verdicts, observed = [], {}
    for item in rubric():
        try:
            if item.needs_weights:
                missing = _why_not_predictions(item, predictions, data)
                if missing:
                    verdicts.append(CheckResult.of(item, Status.NOT_CHECKED, missing))
                    continue
                message = run_check(item.name, namespace, n_class, predictions=predictions, data=data)
            elif not _judged_here(item):
                verdicts.append(CheckResult.of(item, Status.NOT_CHECKED, "checked by the grader only"))
                continue
            else:
                key = (item.observes, item.model)
                if key not in observed:
                    try:
                        observed[key] = observe_step(*key, namespace, n_class)
                    except CheckFailed as err:
                        observed[key] = err
                if isinstance(observed[key], CheckFailed):
                    raise observed[key]
                message = judge(item.name, observed[key], n_class)
        except CheckFailed as err:
            verdicts.append(CheckResult.of(item, Status.FAILED, str(err), err.diagnosis))
        else:
            verdicts.append(CheckResult.of(item, Status.PASSED, message))
    return verdicts


def _why_not_predictions(item: PublicItem, predictions, data) -> str:
    files = f"{item.model}_predictions.npz and .json"
    if predictions is None or not (Path(predictions) / f"{item.model}_predictions.npz").is_file():
        return (f"no {files} in {predictions or 'outputs/'}: the notebook writes them when it trains "
                f"{MODEL_CLASSES[item.model]}; the grader scores them")
    if data is None or not Path(data).is_dir():
        return f"{files} found, but no dataset to score them against (--data DIR or FCNKIT_DATA)"
    return ""
