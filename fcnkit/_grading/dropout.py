"""The dropout judgement: Dropout2d(p=0.5) after relu6 and relu7, from what reaches fc7 and score in
training mode (whole channels zeroed, the others doubled) and in eval mode (nothing changed). numpy
only, like :mod:`fcnkit._grading.judges`, whose messages it shares the form of (the words:
:mod:`fcnkit._grading.diagnoses`)."""
from __future__ import annotations

import numpy as np

from .diagnoses import Diagnosis
from .judges import CheckFailed, _fail_if, root_diagnosis
from .records import Outputs
from ..spec import DROPOUT, MODEL_CLASSES

DROPOUT_P = 0.5


def _dropped(before: np.ndarray, after: np.ndarray):
    """How ``after`` is ``before`` (channels, positions) with values zeroed and the rest scaled by one
    factor: ``(channels zeroed, channels partly zeroed, channels with values, factor)``; None when it
    is not (or nothing is zeroed)."""
    live = np.abs(before).max(axis=1) > 0
    where = before != 0
    zero = (after == 0) & where
    if not zero.any():
        return None
    kept = where & ~zero
    ratios = after[kept] / before[kept]
    if ratios.size and not np.allclose(ratios, ratios[0], rtol=1e-4):
        return None
    whole = live & (zero.sum(axis=1) == where.sum(axis=1))
    partly = live & zero.any(axis=1) & ~whole
    return int(whole.sum()), int(partly.sum()), int(live.sum()), float(ratios[0]) if ratios.size else float("inf")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return np.allclose(a, b, rtol=1e-5, atol=1e-6 * max(float(np.abs(b).max(initial=0.0)), 1e-12))


def _dropout_at(place: str, values: np.ndarray) -> Diagnosis | None:
    """What is wrong with dropout after ``place`` (its observation: the output of the layer before the
    ReLU and the next layer's input, in training mode, then in eval mode); None when it is
    Dropout2d(p=0.5)."""
    layer, drop, after = DROPOUT[place]
    said = {"place": place, "next": after, "layer": layer, "drop": drop, "p": DROPOUT_P}
    raw_train, train, raw_eval, evaluated = (np.asarray(v, dtype=np.float64) for v in values)
    # the activation forward applies between them, as eval mode shows it (a missing ReLU is the
    # equivalence item's: here it only changes what "unchanged" means)
    act = (lambda v: np.maximum(v, 0)) if _close(evaluated, np.maximum(raw_eval, 0)) else (lambda v: v)
    if not _close(evaluated, act(raw_eval)):
        shown = _dropped(np.maximum(raw_eval, 0), evaluated) or _dropped(raw_eval, evaluated)
        if shown:
            return Diagnosis("dropout_in_eval", values={**said, "zeroed": shown[0] + shown[1], "live": shown[2],
                                                         "factor": shown[3]})
        return Diagnosis("dropout_eval_other", values=said)
    before = act(raw_train)
    if _close(train, before):
        return Diagnosis("no_dropout", place, said)
    shown = _dropped(before, train)
    if shown is None:
        return Diagnosis("dropout_other", place, said)
    whole, partly, live, factor = shown
    if partly:
        return Diagnosis("dropout_of_values", values={**said, "partly": partly, "live": live})
    p = 1 - 1 / factor if factor > 0 else float("nan")
    if not abs(p - DROPOUT_P) < 0.01 or not abs(whole / max(live, 1) - DROPOUT_P) < 0.15:
        return Diagnosis("dropout_p", values={**said, "whole": whole, "live": live, "factor": factor, "measured": p})
    return None


def judge_dropout(o: Outputs) -> str:
    """Dropout2d(p=0.5) after relu6 and after relu7: channels zeroed (the others scaled by 2) in
    training mode, nothing changed in eval mode."""
    name = MODEL_CLASSES[o.kind]
    if o.dropout_error or set(o.dropout) != set(DROPOUT):
        root = root_diagnosis(o.layers, o.kind)  # the root cause instead of the error torch raised because of it
        if root:
            raise CheckFailed(f"{name}'s dropout cannot be checked: {root.sentence}.", root)
        why = o.dropout_error or o.error or "no observation of it"
        unobserved = Diagnosis("dropout_unobserved", values={"model": name, "why": why})
        text = unobserved.sentence
        raise CheckFailed(f"{text}{'' if text.endswith('.') else '.'}"[:1000], unobserved)
    problems = [found for place in DROPOUT if (found := _dropout_at(place, o.dropout[place]))]
    _fail_if(problems, f"{name} dropout")
    return (f"Dropout2d(p={DROPOUT_P}) after relu6 and relu7: whole channels zeroed (the others doubled) in "
            f"training mode, nothing changed in eval mode")
