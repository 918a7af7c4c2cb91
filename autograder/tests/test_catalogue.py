"""The reference gets full marks; every known-buggy submission loses points on the check named for
its bug; correct variants (other names, their own copy_params, an unused leftover layer) get full
marks. Observed in this process (the catalogue is trusted code) and judged by the grader's checks;
test_grading.py and test_hostile.py go through the sandboxed child.

Parity: the student-side checks (the notebook's ``check(...)`` and ``python -m fcnkit check``, at
fcnkit's public seed, against the shipped reference activations) fail exactly the items the grader
deducts (at another seed), with the grader's message."""
import functools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.catalogue import MUTANTS, VARIANTS, write_submissions
from autograder.judging import Context, judgement_of, observe_in_process
from autograder.submission import extract
from autograder.rubric import ITEMS, RUBRIC
from fcnkit.checks import CheckFailed, check_all
from fcnkit._grading.extract import run_definitions
from fcnkit._grading.observe import ObservationError
from fcnkit._grading.verdicts import Status

STRUCTURAL = [i.name for i in RUBRIC if not i.needs_weights]
CONTEXT = Context(seed=7)


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
        return observe_in_process(item, load(name), CONTEXT)
    except (CheckFailed, ObservationError) as err:
        return err


def diagnosed(source: str, name: str):
    """The diagnosis of item ``name`` on a catalogue submission, observed once (None when it passes)."""
    item = ITEMS[name]
    record = observed(source, item.observes, item.model)
    if isinstance(record, Exception):
        return record.diagnosis
    try:
        judgement_of(item.name)(record, CONTEXT)
    except CheckFailed as err:
        return err.diagnosis
    return None


def run(source, name: str):
    """Judge item ``name`` on a catalogue submission (by its name, observed once) or a namespace."""
    item = ITEMS[name]
    try:
        record = (observed(source, item.observes, item.model) if isinstance(source, str)
                  else observe_in_process(item, source, CONTEXT))
        if isinstance(record, Exception):
            raise record
        return True, judgement_of(item.name)(record, CONTEXT)
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
    "fcn8s_score_pool4_crop_4": "it matches up to score_pool4; sum after upscore2 differs",
    "fcn8s_score_pool4_crop_9": "it matches up to score_pool4; sum after upscore2 differs",
    "softmax_output": "it matches up to upscore; output differs",
}


@pytest.mark.parametrize("name", sorted(FIRST_DEPARTURE))
def test_equivalence_names_the_first_stage_that_departs(name):
    _, check, _ = MUTANTS[name]
    passed, message = run(name, check)
    assert not passed and FIRST_DEPARTURE[name] in message, message


def test_swapped_crops_say_which_crop_to_check():
    _, message = run("fcn8s_skip_offsets_swapped", "fcn8s_equivalence")
    assert "check the crop of score_pool4 (expected offset 5)" in message


# What each diagnosis says it observed, and the wrong lead it must not give.
OBSERVED = {
    "softmax_output": ("fcn32s_equivalence", "its values lie in [0, 1] and sum to 1 over the classes at every pixel",
                       "crop"),
    "copy_params_forgets_biases": ("fcn32s_copy_params", "weights copied but biases not: conv1_1, conv1_2, conv2_1 "
                                   "... fc7 hold VGG-16's weights with other biases", "was not copied"),
    "fcn32s_21_classes": ("fcn32s_output_shape", "21 output channels where 12 were expected", "crop"),
    "fcn8s_skip_crop_start_only": ("fcn8s_output_shape", "failed adding upscore2's 4x4 and score_pool4 cropped to "
                                   "9x9: maps combined element by element must have the same size", "final crop"),
    "no_dropout": ("fcn8s_dropout", "after relu6, in training mode fc7's input is relu6's output unchanged: no "
                   "dropout is applied between them", "eval mode"),
}


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_diagnoses_say_what_was_observed(name):
    item, said, not_said = OBSERVED[name]
    passed, message = run(name, item)
    assert not passed and said in message and not_said not in message, message


def test_dropout_is_judged_from_what_it_does():
    """Dropout of values (nn.Dropout) is told from Dropout2d by what it zeroes, observed on a real
    model; the judgement of other patterns, on observations made up here: another p, active in eval
    mode, none at all, and a missing ReLU (the equivalence item's, not dropout's)."""
    from fcnkit._grading.diagnoses import Diagnosis
    from fcnkit._grading.dropout import _dropout_at
    namespace = load("reference")

    class FCN32s(namespace["FCN32s"]):
        def __init__(self, n_class=12):
            super().__init__(n_class)
            self.drop6 = torch.nn.Dropout(0.5)
    passed, message = run({**namespace, "FCN32s": FCN32s}, "fcn32s_dropout")
    assert not passed and "single values within channels were zeroed" in message, message
    assert "drop6 should be nn.Dropout2d" in message and "drop6 is nn.Dropout2d" not in message, message

    rng = np.random.default_rng(0)
    raw = rng.normal(size=(2, 512, 4))  # the layer's output in training and eval mode
    relu = np.maximum(raw, 0)
    channels = rng.random((512, 1)) < 0.5
    cases = {"dropout2d": (relu[0] * ~channels * 2, relu[1], "", None),
             "p=0.2": (relu[0] * ~(rng.random((512, 1)) < 0.2) * 1.25, relu[1], "scaled by 1.25 (dropout with p = 0.2)",
                       Diagnosis("dropout_p")),
             "active in eval": (relu[0] * ~channels * 2, relu[1] * ~channels * 2, "dropout is active in eval mode",
                                Diagnosis("dropout_in_eval")),
             "none": (relu[0], relu[1], "relu6's output unchanged", Diagnosis("no_dropout", "relu6")),
             "no ReLU": (raw[0] * ~channels * 2, raw[1], "", None)}
    for case, (train, evaluated, said, diagnosis) in cases.items():
        found = _dropout_at("relu6", np.stack([raw[0], train, raw[1], evaluated]))
        assert (found is None) if not said else (found == diagnosis and said in found.sentence), (case, found)


def test_a_pool_defined_otherwise_is_shown_as_written():
    """A trial's pool4 (3x3, padded by 1): the message shows it as written, padding included."""
    namespace = load("reference")

    class FCN32s(namespace["FCN32s"]):
        def __init__(self, n_class=12):
            super().__init__(n_class)
            self.pool4 = torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    passed, message = run({**namespace, "FCN32s": FCN32s}, "fcn32s_vgg_layers")
    assert not passed and ("pool4 is MaxPool2d(kernel_size=3, stride=2, padding=1); expected kernel_size=2, "
                           "stride=2, padding=0") in message, message


def test_one_mistake_in_other_numbers_is_one_diagnosis():
    """fc6 as a 3x3 or as a 5x5 convolution: two messages, each with the student's own numbers, and one
    diagnosis, which is what the class overview groups by (no message is read)."""
    from autograder.catalogue import mutate
    from fcnkit._grading.diagnoses import Diagnosis
    said = {}
    for k in (3, 5):
        namespace = {"__name__": "submission"}
        source = mutate([("fcn.fc6 = nn.Conv2d(512, 4096, 7)", f"fcn.fc6 = nn.Conv2d(512, 4096, {k})")])
        path = Path(tempfile.mkdtemp()) / "s.py"
        path.write_text(source)
        assert run_definitions([vars(c) for c in extract(path).chunks], namespace) == []
        record = observe_in_process(ITEMS["fcn32s_head"], namespace, CONTEXT)
        with pytest.raises(CheckFailed) as failed:
            judgement_of("fcn32s_head")(record, CONTEXT)
        said[k] = (str(failed.value), failed.value.diagnosis)
    assert said[3][0] != said[5][0] and "kernel_size=3" in said[3][0]
    assert said[3][1] == said[5][1] == Diagnosis("wrong_layer", "fc6")


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
    code = ("import sys\nimport autograder.__main__, autograder.pipeline, autograder.reports.html, "
            "autograder.reports.overview, autograder.pipeline.class_grading, autograder.rubric\n"
            "from fcnkit import spec\nfrom fcnkit._grading import judges, records\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_a_check_of_the_grader_alone_does_not_stop_the_notebook(capsys):
    """An item an instructor adds to the rubric gets a test cell whose visible check(...) fcnkit does
    not know: it says so instead of failing, and the hidden part does the grading."""
    from fcnkit.checks import check
    check("fcn32s_something_new", load("reference"))
    assert "NOT CHECKED fcn32s_something_new: checked by the grader only" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- the student side
@functools.cache
def student_verdicts(name: str) -> dict:
    """``{item: (passed, message, diagnosis)}`` of the student-side checks, at the public seed."""
    return {v.name: (v.status is Status.PASSED, v.message, v.diagnosis) for v in check_all(load(name)) if v.name in STRUCTURAL}


def without_numbers(message: str) -> str:
    """A message less its measured difference (sampled on the student side, in full in the grader) and
    the channels dropout zeroed (another seed, other channels)."""
    message = re.sub(r"differs by \S+ \(relative\)", "differs by ... (relative)", message)
    return re.sub(r"\d+ of \d+ channels", "N of M channels", message)


# The inner loop (-m "not slow") compares one submission of each kind: correct, a wrong layer table, a wrong
# crop in a skip, a copy that forgets a layer, a correct variant; the full run compares every one.
PARITY_FAST = {"reference", "fc6_kernel_3", "fcn8s_score_pool4_crop_9", "copy_params_forgets_fc7",
               "variant_own_copy_params"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in PARITY_FAST else pytest.mark.slow)
                                  for name in ["reference", *sorted(MUTANTS), *[f"variant_{v}" for v in VARIANTS]]])
def test_the_student_side_fails_exactly_what_the_grader_deducts(name):
    """All PASS before submitting means every structural point; a FAIL is a deduction, with the
    message the feedback will show (the first stage that departs, and its hint)."""
    student, grader = student_verdicts(name), {item: run(name, item) for item in STRUCTURAL}
    assert {i for i, (ok, *_) in student.items() if not ok} == {i for i, (ok, _) in grader.items() if not ok}
    for item, (passed, message) in grader.items():
        if not passed:
            assert without_numbers(student[item][1]) == without_numbers(message), item
            assert student[item][2] == diagnosed(name, item), item  # the same diagnosis


def test_the_silent_mistakes_are_caught_before_submitting():
    """A centre crop, score_pool4 cropped at 4 or 9: they passed every cell of the notebook and lost
    22 or 14 points in the grader."""
    for name, item in [("fcn32s_centre_crop", "fcn32s_equivalence"), ("fcn8s_centre_crop", "fcn8s_equivalence"),
                       ("fcn8s_score_pool4_crop_4", "fcn8s_equivalence"),
                       ("fcn8s_score_pool4_crop_9", "fcn8s_equivalence")]:
        passed, message, _ = student_verdicts(name)[item]
        assert not passed and "departs from the reference" in message, (name, message)
    assert "check the crop of score_pool4 (expected offset 5)" in student_verdicts("fcn8s_score_pool4_crop_9")[
        "fcn8s_equivalence"][1]


def test_layers_in_a_plain_list_are_named_as_unregistered():
    for item in ("fcn8s_head", "fcn8s_equivalence"):
        passed, message = run("upsamplings_in_plain_list", item)
        assert not passed and "upscores[0], upscores[1], upscores[2] are not registered" in message, message
        assert "nn.ModuleList" in message and "dropout" not in message


@pytest.mark.parametrize("name,cause", [("no_padding_100", "conv1_1 pads by 1 instead of 100"),
                                        ("no_ceil_mode_shared", "pool1, pool2, pool3, pool4, pool5 lack ceil_mode=True")])
def test_later_checks_name_the_root_cause_not_a_torch_error(name, cause):
    for model in ("fcn32s", "fcn8s"):
        for item in (f"{model}_output_shape", f"{model}_equivalence"):
            passed, message = run(name, item)
            assert not passed and cause in message and f"{model}_vgg_layers reports it" in message, message
            assert "Kernel size can't be greater" not in message, message


def test_hints_point_at_the_real_place():
    passed, message = run("fcn32s_upscore_kernel_32", "fcn32s_output_shape")
    assert not passed and "forward uses kernel 32 stride 32, expected kernel 64 stride 32" in message
    assert "final crop" not in message
    assert "check the final crop: it starts at offset 19 and keeps as many rows and columns as the input has" in run("fcn32s_centre_crop", "fcn32s_equivalence")[1]
    for model in ("fcn32s", "fcn8s"):
        passed, message = run("init_weights_not_called", f"{model}_head")
        assert not passed and "call init_weights(self)" in message and "get_upsampling_weight" not in message
    passed, message = run("upscore_random_init", "fcn8s_head")  # init_weights called, but it initialises wrongly
    assert not passed and "get_upsampling_weight" in message and "call init_weights" not in message


# ----------------------------------------------------------------------------------- through the sandbox
@pytest.mark.slow
def test_the_whole_catalogue_through_the_sandbox(graded_catalogue):
    """The fast path (the warm worker forking a confined child per submission, two at a time)
    gives the verdicts of the slow one (each submission observed in a process of its own, here the
    test's, as the tests above do), message for message, on every catalogue submission: correct
    solutions get every structural point, each mutant loses its named check."""
    from autograder.tests.conftest import CATALOGUE_SEED
    assert CONTEXT.seed == CATALOGUE_SEED  # the run and the in-process observations share their seed
    reports = {student: {c["name"]: c for c in report["checks"]}
               for student, report in graded_catalogue.reports.items()}
    assert len(reports) == 1 + len(MUTANTS) + len(VARIANTS)
    for name, checks in reports.items():
        for item in RUBRIC:
            if not item.needs_weights:
                passed, message = run(name, item.name)
                assert (checks[item.name]["status"], checks[item.name]["message"]) == \
                    ("passed" if passed else "failed", message), (name, item.name)
                diagnosis = diagnosed(name, item.name)  # what the overview groups by, the same both ways
                assert checks[item.name].get("diagnosis") == (diagnosis.to_json() if diagnosis else None)
                assert passed or diagnosis.code != "unclassified", (name, item.name, message)
    for name in ["reference", *[f"variant_{v}" for v in VARIANTS]]:
        lost = [c for c, r in reports[name].items() if r["status"] != "passed" and not c.endswith("_miou")]
        assert not lost, (name, [reports[name][c]["message"] for c in lost])
    for name, (why, check, _) in MUTANTS.items():
        assert reports[name][check]["score"] == 0, f"{name} ({why}) kept {check}"
