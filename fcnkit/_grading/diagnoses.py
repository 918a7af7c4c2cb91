"""What went wrong, as data: a failed check's diagnosis is a code and its subject (the layer, stage or
exception it is about), set where the failure is found; :data:`LABELS` says each code in words.

The message a student reads says the same with their own numbers and what to do; the class overview
groups students by diagnosis and shows the label, so rewording a message never regroups anyone, and
two students with the same mistake in different sizes are one row. numpy and torch free.
"""
from __future__ import annotations

from dataclasses import dataclass

# code -> the words for it ({subject}: what the diagnosis names). The overview's rows read these.
LABELS = {
    # the model as written (structure)
    "no_class": "no class {subject}",
    "not_a_module": "{subject} is not an nn.Module class",
    "construction_raises": "constructing the model raises {subject}",
    "missing_layer": "no layer named {subject}",
    "wrong_layer": "{subject} is not the layer the assignment specifies",
    "ceil_mode": "{subject} without ceil_mode=True",
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


MAX_SUBJECT = 200  # characters of a subject read back (a child's record is untrusted data)

# the codes a grading child can record: its observers (observe.py), its checkpoint loading (fcnkit.train) and
# its runtime. A child's record naming another code (time_limit, below_threshold...) is forged: it reads as none
RECORDED = frozenset({"no_class", "not_a_module", "construction_raises", "forward_raises", "forward_combines",
                      "forward_returns", "missing_layer", "role_count", "copy_raises", "checkpoint_missing",
                      "checkpoint_fit", "checkpoint_not_state_dict", "out_of_memory", "observer_error"})

# the codes of checks that never ran: the child stopped, or never started, before them (their message
# says "not graded: ...")
NOT_RUN = frozenset({"did_not_run", "time_limit", "child_start", "definitions", "grader_error"})


@dataclass(frozen=True)
class Diagnosis:
    """What a failed check found: a code of :data:`LABELS` and what it is about.

    Args:
        code: the kind of mistake (``departs``, ``wrong_layer``, ``forward_raises``...).
        subject: the layer, stage, exception type... the code names ("" when it names none).
    """
    code: str
    subject: str = ""

    def __post_init__(self):
        if self.code not in LABELS:
            raise ValueError(f"unknown diagnosis code {self.code!r}: add it to fcnkit._grading.diagnoses.LABELS")

    @property
    def label(self) -> str:
        """The diagnosis in words, as the class overview shows it."""
        return LABELS[self.code].format(subject=self.subject)

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
