"""What went wrong, as data: a failed check's diagnosis is a code, its subject (the layer, stage or
exception it is about) and its values (the student's own numbers), set where the failure is found.

Two tables say each code in words: :data:`LABELS` for the class overview (the subject only: two students
with the same mistake in different sizes are one row), :data:`SENTENCES` for the student (their values,
and what to do). :data:`HINTS` says what to check when a later check fails because of a code. Nothing
reads these words back: rewording one regroups nobody. numpy and torch free.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field

# code -> the words for it ({subject}: what the diagnosis names). The overview's rows read these.
LABELS = {
    # the model as written (structure)
    "no_class": "no class {subject}",
    "not_a_module": "{subject} is not an nn.Module class",
    "construction_raises": "constructing the model raises {subject}",
    "construction_signature": "{subject}(n_class) cannot be called",
    "built_not_module": "{subject}(n_class) does not return an nn.Module",
    "missing_layer": "no layer named {subject}",
    "wrong_layer": "{subject} is not the layer the assignment specifies",
    "not_max_pool": "{subject} is not nn.MaxPool2d",
    "wrong_pool": "{subject} is not a 2x2 max pool of stride 2",
    "ceil_mode": "{subject} without ceil_mode=True",
    "conv1_1_padding": "conv1_1's padding",
    "pools_floor": "{subject} without ceil_mode",
    "unregistered": "layers kept in a plain list or dict (PyTorch does not see them)",
    "root_cause": "fails because {subject} (the VGG-16 layers)",
    "score_layer": "not one 1x1 score layer with n_class outputs for {subject}",
    "upsampling_kernels": "transposed convolutions other than the assignment's kernels and strides",
    "upsampling_bias": "a transposed convolution with a bias",
    "upsampling_channels": "a transposed convolution that changes the number of channels",
    "upsampling_too_large": "a transposed convolution too large to check",
    "upsampling_not_initialised": "upsampling weights left as created (init_weights not called)",
    "upsampling_not_bilinear": "upsampling weights not bilinear",
    "n_class_channels": "output channels other than n_class",
    "final_crop": "the final crop",
    # running forward
    "forward_raises": "forward raises {subject}",
    "forward_combines": "forward fails {subject}",
    "forward_returns": "forward returns {subject}, not a tensor",
    "no_output": "forward produces no output",
    "missing_in_forward": "no layer named {subject} runs in forward",
    "role_count": "cannot tell which layer is {subject}",
    "departs": "departs from the reference at {subject}",
    # copy_params_from_vgg16
    "copy_raises": "copy_params_from_vgg16 raises {subject}",
    "copy_size": "{subject} missing or of another size after the copy",
    "not_copied": "{subject} not copied",
    "biases_not_copied": "weights copied, biases not",
    # dropout
    "dropout_unobserved": "dropout cannot be observed",
    "dropout_in_eval": "dropout active in eval mode",
    "dropout_eval_other": "in eval mode, what reaches the next layer is neither output",
    "no_dropout": "no dropout after {subject}",
    "dropout_other": "after {subject}, something other than dropout",
    "dropout_of_values": "nn.Dropout (values) instead of nn.Dropout2d (channels)",
    "dropout_p": "dropout with another p",
    # trained models
    "below_threshold": "test mIoU below the threshold",
    "predictions_count": "as many predictions as evaluation images expected",
    "predictions_fit": "a prediction does not fit its label",
    "predictions_split": "predictions for another split or number of classes",
    "predictions_scale": "predictions at a scale the grader does not accept",
    "predictions_cover": "predictions do not cover the test split",
    "predictions_size": "a predicted map of another size than its image",
    "predictions_map": "a predicted map that cannot be scored",
    "predictions_ceiling": "test mIoU above what an FCN reaches",
    "predictions_unreadable": "submitted predictions unreadable",
    "predictions_disagree": "predictions differ from what the weights produce",
    "no_predictions": "no predictions submitted",
    "no_checkpoint": "no weights found",
    "checkpoint_missing": "no checkpoint file",
    "checkpoint_fit": "weights that do not fit the model",
    "checkpoint_not_state_dict": "a checkpoint that is not a plain state_dict",
    "checkpoint_unreadable": "a checkpoint the grader does not open",
    "no_labels": "predictions submitted, no labels to score them",
    "no_trained_results": "no trained results given",
    # the run
    "definitions": "the notebook could not be read: {subject}",
    "time_limit": "stopped at the submission's time limit",
    "check_stopped": "the check {subject}",
    "child_start": "the grading child could not start",
    "did_not_run": "the check did not run",
    "unreadable_record": "what the check observed could not be read",
    "out_of_memory": "out of memory",
    "observer_error": "the observation raised {subject}",
    "grader_error": "a grader error ({subject})",
    "not_in_run": "not graded in this run",
    "unclassified": "{subject}",
}


# code -> what the student reads: their values in braces ({subject} too). A list reads "a, b" ("none" when
# empty; {x:and}: "a and b"); {x:one|many} is the form for how many x holds ("#" in it: the number); {?x} is
# the clause "code?x" (else "?x") when x has a value (not None, False or empty), "" otherwise.
SENTENCES = {
    # building the model (the grading child and the notebook observe these)
    "no_class": "No class named {subject} was found; define `class {subject}(nn.Module)`.",
    "not_a_module": "{subject} must be a class deriving from torch.nn.Module.",
    "construction_raises": "{model}(n_class={n_class}) raised {error}.{?unfinished}",
    "construction_signature": "{subject} could not be built as {subject}(n_class={n_class}): {error}",
    "built_not_module": "{subject}(n_class={n_class}) did not return an nn.Module.",
    "?unfinished": " Finish the parts marked YOUR CODE HERE.",
    # the model as written (structure)
    "unregistered": "{names}{?more} {count:is|are} not registered: a plain list (or dict) hides layers from PyTorch "
                    "(model.eval(), .to(), state_dict() and these checks skip them); use nn.ModuleList or "
                    "attributes. ",
    "unregistered?more": " ...",
    "?register": " (only registered layers are seen: attributes or an nn.ModuleList, not a plain list; a function "
                 "such as F.interpolate is no layer)",
    "missing_layer": "no layer named {subject}",
    "wrong_layer": "{subject} is {found}; expected {type}({in_channels}, {out_channels}, kernel_size={kernel_size}, "
                   "stride={stride}{?padding}, bias={bias})",
    "wrong_layer?padding": ", padding={padding}",
    "not_max_pool": "{subject} should be nn.MaxPool2d(2, stride=2, ceil_mode=True)",
    "wrong_pool": "{subject} is MaxPool2d(kernel_size={kernel_size}, stride={stride}, padding={padding}); expected "
                  "kernel_size=2, stride=2, padding=0",
    "ceil_mode": "{pools} {pools:needs|need} ceil_mode=True (it keeps odd-sized maps aligned with the crops)",
    "conv1_1_padding": "conv1_1 pads by {padding} instead of 100",
    "pools_floor": "{pools} {pools:lacks|lack} ceil_mode=True",
    "root_cause": "{causes:and} ({kind}_vgg_layers reports it): fix that first",
    "score_layer": "expected one 1x1 Conv2d({in_channels}, {n_class}) for {subject}, found {found}{?others}",
    "score_layer?others": " (a 1x1 {others:and} instead: {n_class} classes, one output channel each)",
    "upsampling_kernels": "expected ConvTranspose2d layers with {expected} (kernel = 2 x stride); found {found}",
    "upsampling_bias": "{layer} must not have a bias (bias=False)",
    "upsampling_channels": "{layer} maps {in_channels} to {out_channels} channels; expected {n_class} to {n_class}",
    "upsampling_too_large": "{layer} is too large to check",
    "upsampling_not_initialised": "{layer} keeps the weights it was created with: call init_weights(self) at the "
                                  "end of __init__ (it sets every ConvTranspose2d to bilinear upsampling)",
    "upsampling_not_bilinear": "{layer} is not initialised to bilinear upsampling (init_weights copies "
                               "get_upsampling_weight(n_class, n_class, kernel_size) into it)",
    "n_class_channels": "{model} output shape: {channels} output channels where {n_class} were expected (one score "
                        "per class; the height and width are right): build the score layers and upsamplings with "
                        "n_class.",
    "?size": "input 1x3x{height}x{width} gave {got}, expected 1x{n_class}x{height}x{width}",
    # running forward
    "forward_raises": "{call} on an input of shape {shape} raised {error}.{?unfinished}",
    "forward_combines": "{call} on an input of shape {shape} failed {combining} ({error})",
    "forward_returns": "{call} returned {subject}; it must return a tensor of scores.",
    "no_output": "{model} produced no output.",
    "missing_in_forward": "cannot compare: no layer named {subject} runs in forward.",
    "role_count": "cannot compare: expected {count:exactly one|#} {layer} running in forward, found {found}{?near}.",
    "role_count?near": " ({near:and} instead: {n_class} classes expected)",
    "departs": "{model} departs from the reference with the same weights: {?matched}{subject}{?shape}{?difference}: "
               "{hint}.",
    "departs?matched": "it matches up to {matched}; ",
    "departs?shape": " is {shape}, expected {expected}",
    "departs?difference": " differs by {difference:.2g} (relative)",
    # copy_params_from_vgg16
    "copy_raises": "copy_params_from_vgg16(model, vgg16) raised {error}.{?unfinished}",
    "copy_size": "{subject} is missing or has the wrong size",
    "not_copied": "{subject} was not copied{?reshape}",
    "not_copied?reshape": " (reshape the linear weight with .view)",
    "biases_not_copied": "weights copied but biases not: {layers}{?last} {count:holds|hold} VGG-16's weights with "
                         "other biases (copy each layer's .bias as well as its .weight)",
    "biases_not_copied?last": " ... {last}",
    # dropout (what reaches the layer after dropout: {next})
    "dropout_unobserved": "{model}'s dropout cannot be checked: {why}",
    "dropout_in_eval": "after {place}, in eval mode {zeroed} of {live} channels of {place}'s output reach {next} "
                       "zeroed (all or in part) and the rest scaled by {factor:.3g}: dropout is active in eval mode "
                       "(an nn.Dropout2d module is not: model.eval() turns it off)",
    "dropout_eval_other": "after {place}, in eval mode {next}'s input is neither {place}'s output nor {layer}'s",
    "no_dropout": "after {place}, in training mode {next}'s input is {place}'s output unchanged: no dropout is "
                  "applied between them (expected {drop} = nn.Dropout2d(p={p}))",
    "dropout_other": "after {place}, in training mode {next}'s input is not {place}'s output with values zeroed "
                     "and the others scaled by one factor, as dropout makes it (expected {drop} = nn.Dropout2d(p={p}))",
    "dropout_of_values": "after {place}, in training mode single values within channels were zeroed ({partly} of "
                         "{live} channels partly): that is dropout of values (nn.Dropout); {drop} should be "
                         "nn.Dropout2d, which zeroes whole channels",
    "dropout_p": "after {place}, in training mode {whole} of {live} channels were zeroed and the others scaled by "
                 "{factor:.3g} (dropout with p = {measured:.2g}); expected {drop} = nn.Dropout2d(p={p}), which "
                 "zeroes about half the channels and doubles the others",
    # trained models
    "below_threshold": "{model} reaches test mIoU {miou:.3f}, below the threshold {threshold:.2f}; train longer or "
                       "start from ImageNet VGG-16 weights.",
    "predictions_count": "{count} predictions for {expected} evaluation images.",
    "predictions_fit": "a prediction does not fit its label: {error}.",
    "predictions_split": "{model}'s predictions are for the {split!r} split with {n_class} classes; the grader "
                         "scores the {graded_split!r} split with {graded_n_class}.",
    "predictions_scale": "{model}'s predictions were made at scale {scale}; the grader accepts {low} to {high}.",
    "predictions_cover": "{model}'s predictions do not cover the {split} split: {?missing}{?extra}{?order}.{?smoke}",
    "predictions_cover?missing": "{missing} of the {count} {split} images are missing (e.g. {first})",
    "predictions_cover?extra": "{extra} are not {split} images (e.g. {first})",
    "predictions_cover?order": "the JSON's image_ids are not the split's, in its order",
    "predictions_cover?smoke": " They come from a smoke run (FCNKIT_SMOKE=1: a few training steps on the bundled "
                               "sample's {maps} test images): the student must run the notebook without "
                               "FCNKIT_SMOKE.",
    "predictions_size": "{model}'s map of {image} is {got}; the image is {expected} at scale {scale}.",
    "predictions_map": "{model}'s map of {image}: {error}.",
    "predictions_ceiling": "{model}'s predictions reach test mIoU {miou:.3f}, above the {ceiling} no FCN on VGG-16 "
                           "comes near on this split (a copy of the labels?).",
    "predictions_unreadable": "submitted predictions unreadable: {?link}{?error}",
    "predictions_unreadable?link": "{link}/ is a link, which is not followed.",
    "predictions_unreadable?error": "{error}",
    "predictions_disagree": "{model}'s submitted predictions differ from what its weights produce: they agree on "
                            "{agreement:.1%} of the pixels ({?same_weights}{?other_weights}).",
    "?same_weights": "the same weights (SHA-256)",
    "?other_weights": "weights whose SHA-256 is not the one recorded ({other_weights}... vs {digest}...)",
    "no_predictions": "no outputs/{kind}_predictions.npz and .json submitted (the notebook writes them when it "
                      "trains {model}).",
    "no_checkpoint": "no {checkpoint} found for {student} in {folder}.",
    "checkpoint_missing": "checkpoint {path} not found; save model.state_dict() there.",
    "checkpoint_fit": "checkpoint {path} does not fit the model: {error}",
    "checkpoint_not_state_dict": "checkpoint {path} is not a plain state_dict ({error}); save with "
                                 "torch.save(model.state_dict(), path).",
    "checkpoint_unreadable": "{checkpoint} not read: {error}",
    "no_labels": "not graded: predictions submitted, but the run has no labels to score them (--data DIR or "
                 "FCNKIT_DATA).",
    "no_trained_results": "not graded: no trained results given (submitted predictions are scored with --data DIR "
                          "or FCNKIT_DATA; weights with --checkpoints DIR).",
    # the run (a check that stopped: "this check {sentence}")
    "definitions": "{reason}",
    "time_limit": "the grader stopped the submission after {seconds} s",
    "check_stopped": "{?ended}{?out_of_time}{?cpu}{?wall}{?channel}",
    "check_stopped?ended": "ended the submission's process ({ended})",
    "check_stopped?out_of_time": "was stopped when the submission's {out_of_time} s ran out",
    "check_stopped?cpu": "used more than {cpu} s of CPU time (the limit per check)",
    "check_stopped?wall": "did not finish within {wall} s of wall-clock time (the backstop per check; it used "
                          "{cpu_used:.0f} s of CPU time: waiting or sleeping?)",
    "check_stopped?channel": "broke the grader's event channel ({channel})",
    "child_start": "the grading child could not start: {error}",
    "did_not_run": "the check did not run",
    "unreadable_record": "the grader could not read what this check observed: {error}",
    "out_of_memory": "ran out of memory (MemoryError)",
    "observer_error": "{error} (at {file}:{line})",
    "grader_error": "{?judging}{?reason}",
    "grader_error?judging": "the grader could not judge what was observed ({judging}).",
    "grader_error?reason": "not graded: {reason}",
    "not_in_run": "not graded in this run.",
    "unclassified": "{subject}",
}

# code -> what to check, when a later check fails because of it (the output shape, the activations)
HINTS = {
    "upsampling_kernels": "check the upsamplings: forward uses {found}, expected {expected} (a transposed "
                          "convolution makes (H - 1) * stride + kernel - 2 * padding pixels of H; the crops assume "
                          "these)",
    "final_crop": "{?after}check the final crop: it starts at offset {offset} and keeps as many rows and columns "
                  "as the input has",
    "final_crop?after": "{after} matches, so what comes after it differs: ",
    "probabilities": "its values lie in [0, 1] and sum to 1 over the classes at every pixel: probabilities, as a "
                     "softmax gives; forward must return the class scores (the loss applies its own log-softmax)",
}

# stage -> what to look at when it is the first to depart from the reference's activations
DEPARTURE_HINTS = {
    "pool3": "check conv1_1 ... conv3_3, the ReLU after each, and pool1 ... pool3 (2x2, stride 2, ceil_mode=True)",
    "pool4": "check conv4_1 ... conv4_3, the ReLU after each, and pool4",
    "pool5": "check conv5_1 ... conv5_3, the ReLU after each, and pool5",
    "fc7 input": "check fc6, then relu6 and drop6 after it (in eval mode dropout changes nothing)",
    "fc7": "check fc7",
    "score input": "check the ReLU and dropout after fc7",
    "score": "check score (a 1x1 convolution on fc7)",
    "upscore2 input": "upscore2 should upsample the score of fc7 alone",
    "upscore2": "check upscore2",
    "score_pool4": "check score_pool4 (a 1x1 convolution on pool4)",
    "sum after upscore2": "check the crop of score_pool4 (expected offset 5) and that it is added to upscore2",
    "upscore_pool4": "check upscore_pool4",
    "score_pool3": "check score_pool3 (a 1x1 convolution on pool3)",
    "sum after upscore_pool4": "check the crop of score_pool3 (expected offset 9) and that it is added to "
                               "upscore_pool4",
    "upscore8": "upscore8 should upsample that sum",
    "upscore": "check upscore",
}


class _Words(string.Formatter):
    """Renders one template of :data:`SENTENCES` or :data:`HINTS` with a diagnosis' values (the forms the
    comment above SENTENCES describes)."""

    def __init__(self, table: dict, key: str):
        self.table, self.key = table, key

    def get_value(self, key, args, values):
        if isinstance(key, str) and key.startswith("?"):
            name = key[1:]
            if _absent(values.get(name)):
                return ""
            clause = f"{self.key}?{name}" if f"{self.key}?{name}" in self.table else f"?{name}"
            return _Words(self.table, self.key).vformat(self.table[clause], (), values)
        return values[key]

    def format_field(self, value, spec):
        if "|" in spec:  # one|many
            count = value if isinstance(value, int) else len(value)
            return spec.split("|")[count != 1].replace("#", str(count))
        if isinstance(value, list):
            return (" and " if spec == "and" else ", ").join(
                v.sentence if isinstance(v, Diagnosis) else str(v) for v in value) or "none"
        return format(value, spec)


def _absent(value) -> bool:
    return value is None or value is False or (isinstance(value, (str, list, tuple, dict)) and not value)


def words(key: str, table: dict | None = None, **values) -> str:
    """The template ``key`` of ``table`` (:data:`SENTENCES`) with ``values``: a clause alone ("?same_weights"),
    say, for a message that is not a failure's."""
    table = SENTENCES if table is None else table
    return _Words(table, key.split("?")[0]).vformat(table[key], (), values)


MAX_SUBJECT = 200  # characters of a subject read back (a child's record is untrusted data)

# the codes a grading child can record: its observers (observe.py), its checkpoint loading (fcnkit.train) and
# its runtime. A child's record naming another code (time_limit, below_threshold...) is forged: it reads as none
RECORDED = frozenset({"no_class", "not_a_module", "construction_raises", "construction_signature",
                      "built_not_module", "forward_raises", "forward_combines", "forward_returns",
                      "missing_in_forward", "role_count", "copy_raises", "checkpoint_missing", "checkpoint_fit",
                      "checkpoint_not_state_dict", "out_of_memory", "observer_error"})

# the codes of checks that never ran: the child stopped, or never started, before them (their message
# says "not graded: ...")
NOT_RUN = frozenset({"did_not_run", "time_limit", "child_start", "definitions", "grader_error"})


@dataclass(frozen=True)
class Diagnosis:
    """What a failed check found: a code of :data:`LABELS`, what it is about, and the student's values.

    Two diagnoses are the same when their code and subject are: the values are the student's numbers,
    which the overview leaves out, and they are not kept in a record (its message holds them in words).

    Args:
        code: the kind of mistake (``departs``, ``wrong_layer``, ``forward_raises``...).
        subject: the layer, stage, exception type... the code names ("" when it names none); its
            characters that are not printable (controls, bidi and other format characters) are dropped.
        values: what :data:`SENTENCES` and :data:`HINTS` fill in for this code (the layer as written, the
            expected one, a measured difference...).
    """
    code: str
    subject: str = ""
    values: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.code not in LABELS:
            raise ValueError(f"unknown diagnosis code {self.code!r}: add it to fcnkit._grading.diagnoses.LABELS")
        if not self.subject.isprintable():  # a layer named with bidi controls must not reorder the overview's row
            object.__setattr__(self, "subject", "".join(c for c in self.subject if c.isprintable()))

    @property
    def label(self) -> str:
        """The diagnosis in words, as the class overview shows it."""
        return LABELS[self.code].format(subject=self.subject)

    @property
    def sentence(self) -> str:
        """The diagnosis in the student's words (:data:`SENTENCES`): their values, and what to do."""
        return words(self.code, subject=self.subject, **self.values)

    @property
    def hint(self) -> str:
        """What to check when a later check fails because of this (:data:`HINTS`)."""
        return words(self.code, HINTS, subject=self.subject, **self.values)

    def to_json(self) -> list[str]:
        return [self.code, self.subject]

    @classmethod
    def from_json(cls, data, codes=LABELS) -> "Diagnosis | None":
        """From ``[code, subject]`` (the subject cut to MAX_SUBJECT characters); None for none, or for a code
        this version does not know.

        Args:
            data: the JSON form, as :meth:`to_json` wrote it (or anything: it may come from a child).
            codes: the codes accepted; :data:`RECORDED` for what a grading child recorded.
        """
        if not (isinstance(data, (list, tuple)) and len(data) == 2 and all(isinstance(x, str) for x in data)):
            return None
        return cls(data[0], data[1][:MAX_SUBJECT]) if data[0] in codes and data[0] in LABELS else None
