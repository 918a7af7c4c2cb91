"""Judgements found by rubric item: each judging module registers its functions with
:func:`judgement`, and the pipeline (and nbgrader's hidden tests) find them by the item's name.

A judgement takes the record the child observed (:mod:`fcnkit._grading.records`) and the run's
:class:`~autograder.judging.context.Context`, and returns a short success message or raises
:class:`fcnkit._grading.judges.CheckFailed` with what to fix.
"""
from __future__ import annotations

from typing import Callable

Judgement = Callable  # (record, Context) -> message; raises CheckFailed

JUDGEMENTS: dict[str, Judgement] = {}  # rubric item name: its judgement


def judgement(*items: str) -> Callable[[Judgement], Judgement]:
    """Register the decorated function as the judgement of the rubric ``items`` (their names)."""
    def register(function: Judgement) -> Judgement:
        for name in items:
            if name in JUDGEMENTS:
                raise ValueError(f"rubric item {name!r} has two judgements: {JUDGEMENTS[name].__qualname__} "
                                 f"and {function.__qualname__}")
            JUDGEMENTS[name] = function
        return function
    return register


def judgement_of(name: str) -> Judgement:
    """The judgement of rubric item ``name`` (KeyError naming the fix when there is none)."""
    try:
        return JUDGEMENTS[name]
    except KeyError:
        raise KeyError(f"rubric item {name!r} has no judgement: decorate its function in a module of "
                       f"autograder/judging/ with @judgement({name!r})") from None
