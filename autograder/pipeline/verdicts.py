"""A submission's checks, from what its child observed: each item's judgement (found by name in
:mod:`autograder.judging`) on its record, and what to say for items that could not be judged."""
from __future__ import annotations

from pathlib import Path

from fcnkit._grading.diagnoses import MAX_SUBJECT, RECORDED, Diagnosis
from fcnkit._grading.records import Failure, Predictions
from fcnkit.spec import MODEL_CLASSES

from ..isolation import Stopped
from ..judging import CheckFailed, OBSERVATIONS, judgement_of
from ..judging.evidence import predictions_evidence
from ..judging.miou import (Flagged, cross_check, examples, image_iou, judge_miou, judge_predictions, read_submitted,
                            score_predictions)
from ..reports.html import examples_png
from ..results import CheckResult, Report, Status
from ..rubric import RUBRIC, Item
from .discover import CHECKPOINT_NAMES

def result(item: Item, passed: bool, message: str, status: Status | None = None,
           diagnosis: Diagnosis | None = None) -> CheckResult:
    """``item``'s result; one that did not pass has a diagnosis (when none was given, e.g. by a child's forged
    record: "unclassified", its message standing for it)."""
    if not passed and diagnosis is None:
        diagnosis = Diagnosis("unclassified", message[:MAX_SUBJECT])
    return CheckResult.of(item, status or (Status.PASSED if passed else Status.FAILED), message,
                          None if passed else diagnosis)


def failed(item: Item, diagnosis: Diagnosis) -> CheckResult:
    """``item`` failed, as ``diagnosis`` says."""
    return result(item, False, diagnosis.sentence, diagnosis=diagnosis)


def not_graded_check(item: Item, diagnosis: Diagnosis) -> CheckResult:
    """``item`` not graded, as ``diagnosis`` says."""
    return result(item, False, diagnosis.sentence, Status.NOT_GRADED, diagnosis)


def judge(item: Item, outcome, run) -> CheckResult:
    """``item`` judged on the outcome of its step (a StepOutcome of the child)."""
    record = outcome.record
    if record is None:
        return result(item, False, outcome.failure, diagnosis=outcome.diagnosis)
    if isinstance(record, Failure):
        return result(item, False, record.message, diagnosis=Diagnosis.from_json(record.diagnosis, RECORDED))
    try:
        message = judgement_of(item.name)(record, run.context)
    except CheckFailed as err:
        return result(item, False, str(err), diagnosis=err.diagnosis)
    except Exception as err:  # a well-formed record that makes no sense
        error = Diagnosis("grader_error", f"judging: {type(err).__name__}", {"judging": f"{type(err).__name__}: {err}"})
        return result(item, False, error.sentence, diagnosis=error)
    return result(item, True, message)


def _keep_scores(report: Report, kind: str, scores: dict, ids: list[str], maps: list, truth: list,
                 labels=None) -> None:
    """The scores, each test image's mIoU, and the feedback page's examples (best, median, worst)."""
    report.metrics = {**(report.metrics or {}), kind: scores}
    per_image = image_iou(ids, maps, truth)
    report.image_iou = {**(report.image_iou or {}), kind: per_image}
    try:
        shown = examples(per_image, dict(zip(ids, maps)), dict(zip(ids, truth)), labels)
    except (OSError, ValueError):  # an image the page cannot show (DataError: unreadable) never costs the scores
        shown = []
    if shown:  # the record keeps the picture (drawn once, here), not three images and maps of the test split
        png = examples_png(shown)
        shown = [{k: x[k] for k in ("which", "image_id", "iou")} for x in shown]
        shown[0]["png"] = png
    report.first_predictions[kind] = shown


def _from_predictions(item: Item, run, report: Report, folder: Path, weights: Path | None,
                      recomputed: list | None) -> CheckResult:
    """An mIoU item from the submitted predictions (cross-checked against the weights' when the
    child evaluated them)."""
    kind = item.model
    try:
        meta, maps = read_submitted(folder, kind)
        # what the class's integrity flags compare, taken now: they never read the predictions again
        report.evidence[kind] = predictions_evidence(maps, run.labels.ids, meta.weights_sha256)
        scores = judge_predictions(kind, meta, maps, run.labels)
        truth = run.labels.labels(meta.scale)
        _keep_scores(report, kind, scores, run.labels.ids, [maps[i] for i in run.labels.ids],
                     [truth[i] for i in run.labels.ids], run.labels)
        if recomputed is not None:
            report.notes.append(cross_check(kind, meta, maps, recomputed, run.evalset.ids, run.evalset.scale,
                                            weights))
        return result(item, True, "from the submitted predictions: " + judge_miou(kind, scores))
    except Flagged as err:
        return result(item, False, f"flagged for review: {err}", Status.FLAGGED, err.diagnosis)
    except CheckFailed as err:
        return result(item, False, f"from the submitted predictions: {err}", diagnosis=err.diagnosis)


def judge_trained(item: Item, run, report: Report, folder: Path | None, weights: Path | None, outcome,
                  checkpoints: Path | None, stopped: Stopped) -> CheckResult:
    """An mIoU item: from the submitted predictions when there are any, else from the weights alone."""
    kind = item.model
    recomputed = outcome.record.maps if outcome is not None and isinstance(outcome.record, Predictions) else None
    if folder is not None and run.labels is not None:
        return _from_predictions(item, run, report, folder, weights, recomputed)
    if outcome is not None:
        if recomputed is not None:
            try:
                _keep_scores(report, kind, score_predictions(recomputed, run.context.labels), run.evalset.ids,
                             recomputed, run.context.labels)
            except CheckFailed:
                pass
        return judge(item, outcome, run)
    if weights is not None and run.evalset is not None:  # the child stopped before it evaluated them
        return result(item, False, f"not graded: {stopped.words}", diagnosis=stopped.diagnosis)
    if folder is not None:
        return not_graded_check(item, Diagnosis("no_labels"))
    if run.labels is not None:
        return failed(item, Diagnosis("no_predictions", values={"kind": kind, "model": MODEL_CLASSES[kind]}))
    if checkpoints is not None:
        return failed(item, Diagnosis("no_checkpoint", values={
            "checkpoint": CHECKPOINT_NAMES[kind], "student": report.student, "folder": checkpoints}))
    return not_graded_check(item, Diagnosis("no_trained_results"))


def judge_all(report: Report, run, items, outcomes: dict, predictions: dict, weights: dict,
              checkpoints: Path | None, stopped: Stopped, only) -> None:
    """Every rubric item's result into ``report.checks``, in the rubric's order."""
    for item in RUBRIC:
        step = OBSERVATIONS[item.observes].step_id(item.model)
        if item.needs_weights:
            report.checks.append(judge_trained(item, run, report, predictions[item.model], weights.get(item.model),
                                               outcomes.get(step) if item in items else None, checkpoints, stopped))
        elif only is not None and item.name not in only:
            report.checks.append(not_graded_check(item, Diagnosis("not_in_run")))
        elif step in outcomes and item in items:
            report.checks.append(judge(item, outcomes[step], run))
        else:
            report.checks.append(result(item, False, f"not graded: {stopped.words}", diagnosis=stopped.diagnosis))
