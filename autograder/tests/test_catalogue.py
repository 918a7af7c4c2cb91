"""The reference gets full marks; every known-buggy submission loses points on the check named for
its bug; correct variants (other names, their own copy_params, an unused leftover layer) get full
marks. Observed in this process (the catalogue is trusted code) and judged by the grader's checks;
test_grading.py and test_hostile.py go through the sandboxed child."""
import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from autograder import checks
from autograder.catalogue import MUTANTS, VARIANTS, write_submissions
from autograder.extract import extract
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.checks import CheckFailed
from fcnkit.observe import ObservationError, run_definitions

STRUCTURAL = [i.name for i in RUBRIC if not i.needs_weights]
CONTEXT = checks.Context(seed=7)


def load(name: str, folder=None) -> dict:
    namespace = {"__name__": "submission"}
    [path] = write_submissions(folder or Path(tempfile.mkdtemp()), [name])
    assert run_definitions([vars(c) for c in extract(path).chunks], namespace) == []
    return namespace


@functools.cache
def observed(name: str, observes: str, model: str):
    """One observation per submission, step and model, as the grading child makes it (the items
    judged from it share it, as they do in the grader)."""
    item = next(i for i in RUBRIC if (i.observes, i.model) == (observes, model))
    try:
        return checks.observe_in_process(item, load(name), CONTEXT)
    except (CheckFailed, ObservationError) as err:
        return err


def run(source, name: str):
    """Judge item ``name`` on a catalogue submission (by its name, observed once) or a namespace."""
    item = ITEMS[name]
    try:
        record = (observed(source, item.observes, item.model) if isinstance(source, str)
                  else checks.observe_in_process(item, source, CONTEXT))
        if isinstance(record, Exception):
            raise record
        return True, item.check(record, CONTEXT)
    except (CheckFailed, ObservationError) as err:
        return False, str(err)


def test_catalogue_is_large_enough_and_writes_every_submission(tmp_path):
    assert len(MUTANTS) >= 15
    paths = write_submissions(tmp_path)
    assert len(paths) == 1 + len(MUTANTS) + len(VARIANTS)
    assert all(p.read_text().count("class FCN8s") == 1 for p in paths)


@pytest.mark.parametrize("name", ["reference", *[f"variant_{v}" for v in VARIANTS]])
def test_correct_solutions_get_every_structural_point(name):
    for check in STRUCTURAL:
        passed, message = run(name, check)
        assert passed, f"{name}: {check}: {message}"


def test_an_unused_leftover_layer_is_a_note_not_a_lost_item():
    passed, message = run("variant_unused_extra_layer", "fcn8s_head")
    assert passed and "note: upscore is registered but never used in forward" in message


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_each_mutant_loses_the_named_check(name):
    why, check, _ = MUTANTS[name]
    passed, message = run(name, check)
    assert not passed, f"{name} ({why}) passed {check}"
    assert message.strip()
    # the other model's structure is untouched by single-model mistakes
    other = "fcn8s" if ITEMS[check].model == "fcn32s" else "fcn32s"
    if name.startswith(("fcn8s_", "score_pool4", "upscore8", "skip_")) or name.startswith("fcn32s_"):
        assert run(name, f"{other}_vgg_layers")[0] and run(name, f"{other}_head")[0]


# The first stage that departs from the reference, as the feedback names it (checked independently of
# the hint table: these are the places the mutants' code differs).
FIRST_DEPARTURE = {
    "fcn32s_crop_0": "output", "fcn32s_centre_crop": "output", "fcn8s_centre_crop": "output",
    "fcn8s_skip_offsets_swapped": "it matches up to score_pool4; sum after upscore2 differs",
    "fcn8s_missing_pool3_skip": "it matches up to score_pool3; sum after upscore_pool4 differs",
    "missing_relu_fc7": "it matches up to fc7; score input differs",
    "skip_added_before_upsampling": "it matches up to score; upscore2 input differs",
}


@pytest.mark.parametrize("name", sorted(FIRST_DEPARTURE))
def test_equivalence_names_the_first_stage_that_departs(name):
    _, check, _ = MUTANTS[name]
    passed, message = run(name, check)
    assert not passed and FIRST_DEPARTURE[name] in message, message


def test_swapped_crops_say_which_crop_to_check():
    _, message = run("fcn8s_skip_offsets_swapped", "fcn8s_equivalence")
    assert "check the crop of score_pool4 (expected offset 5)" in message


def test_checks_do_not_depend_on_their_order():
    """Each check observes a freshly built model: running equivalence (which writes seeded weights)
    before head and copy_params changes nothing."""
    namespace, names = load("variant_own_copy_params"), ["fcn32s_head", "fcn32s_equivalence", "fcn32s_copy_params"]
    forward = [run(namespace, c) for c in names]
    backward = [run(namespace, c) for c in reversed(names)][::-1]
    assert forward == backward and all(passed for passed, _ in forward)


def test_shapes_come_from_the_meta_device_unless_forward_needs_values():
    """Output shapes cost no arithmetic on the meta device; a forward that needs real values (numpy
    inside it) is measured with real tensors instead, and the message says so."""
    namespace = load("reference")
    assert "real tensors" not in run(namespace, "fcn32s_output_shape")[1]

    class FCN32s(namespace["FCN32s"]):
        def forward(self, x):
            return super().forward(torch.from_numpy(x.numpy()))
    namespace["FCN32s"] = FCN32s
    passed, message = run(namespace, "fcn32s_output_shape")
    assert passed and "measured with real tensors: forward does not run on the meta device" in message


def test_the_grading_process_never_imports_torch():
    """Everything the grading process itself runs (CLI, extraction, judging, reports) is numpy only:
    torch is imported once per run, in the warm worker, and not again for every submission."""
    code = ("import sys\nimport autograder.__main__, autograder.grade, autograder.report, autograder.rubric\n"
            "from fcnkit import judges, records, spec\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_check_of_the_grader_alone_does_not_stop_the_notebook(capsys):
    """An item an instructor adds to the rubric gets a test cell whose visible check(...) fcnkit does
    not know: it says so instead of failing, and the hidden part does the grading."""
    from fcnkit.checks import check
    check("fcn32s_something_new", load("reference"))
    assert "fcn32s_something_new: checked by the grader only" in capsys.readouterr().out
