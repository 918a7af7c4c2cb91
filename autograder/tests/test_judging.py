"""The judging registry and the table of observations: every rubric item is judged by exactly one
registered judgement on an observation of the table, and every observation is a step the child runs."""

import pytest

from autograder.judging import JUDGEMENTS, OBSERVATIONS, judgement, judgement_of
from autograder.rubric import ITEMS, RUBRIC


def test_every_rubric_item_has_one_judgement_and_a_known_observation():
    assert set(JUDGEMENTS) == set(ITEMS)
    assert all(item.observes in OBSERVATIONS for item in RUBRIC), [i.observes for i in RUBRIC]


def test_a_second_judgement_for_an_item_is_refused():
    with pytest.raises(ValueError, match="'fcn32s_head' has two judgements"):
        judgement("fcn32s_head")(lambda record, ctx: "ok")
    assert JUDGEMENTS["fcn32s_head"].__name__ == "head"


def test_an_item_without_a_judgement_names_the_fix():
    with pytest.raises(KeyError, match=r"@judgement\('fcn32s_new_check'\)"):
        judgement_of("fcn32s_new_check")


def test_every_observation_is_a_step_the_child_runs():
    """The child dispatches on the op of each step it is sent: each observation's must be one of them."""
    from fcnkit._grading.observers import OBSERVERS
    assert set(OBSERVATIONS) == set(OBSERVERS), set(OBSERVERS)
    assert OBSERVATIONS["predict"].step_for("fcn8s") == {"id": "predict-fcn8s", "op": "predict", "kind": "fcn8s",
                                                         "checkpoint": "checkpoint-fcn8s"}
    assert OBSERVATIONS["structure"].step_for("fcn32s") == {"id": "structure-fcn32s", "op": "structure",
                                                            "kind": "fcn32s"}
