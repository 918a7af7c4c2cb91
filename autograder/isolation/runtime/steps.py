"""The observation steps of a grading child: what each step of a job runs on the submission's namespace, and
what the warm worker prepares once before it forks the children.

This runs only in the grader's child, from the runtime folder (as ``steps``): it is not in the student
wheel. The observing itself is fcnkit's (:mod:`fcnkit.observe`), so that the notebook's checks see a
model as the grader does.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from fcnkit import observe
from fcnkit.records import CopyParams, Predictions
from fcnkit.seeded import PristineVGG, seeded_copy
from fcnkit.train import load_weights

__all__ = ["PristineVGG", "STEPS", "warm_up_meta", "observe_predictions", "run_step"]


def warm_up_meta() -> None:
    """Run each kind of layer an FCN has once on the meta device: torch loads what the meta device
    needs on first use (about a second), so a process that forks children pays it once for all."""
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2, ceil_mode=True),
                         nn.Dropout2d(), nn.Conv2d(4, 4, 1), nn.ConvTranspose2d(4, 4, 4, 2, bias=False)).eval()
    with torch.no_grad():
        x = tiny.to("meta")(torch.empty(1, 3, 9, 9, device="meta"))
        (x[:, :, 1:3, 1:3] + x[:, :, 0:2, 0:2]).contiguous()


def observe_predictions(namespace: dict, kind: str, n_class: int, checkpoint, images, device="cpu") -> Predictions:
    """The class maps of the submitted trained weights (``checkpoint``, an open file) on ``images``."""
    model = load_weights(observe.build(namespace, kind, n_class, default_init=False), checkpoint)
    return Predictions(kind=kind, maps=observe.predict(model, images, device))


def _structure(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    kind, n_class = step["kind"], job["n_class"]
    model = observe.build(namespace, kind, n_class, default_init=False)
    return observe.observe_structure(model, kind, [tuple(s) for s in job["output_sizes"]],
                                     rebuild=lambda: observe.build(namespace, kind, n_class, default_init=False))


def _outputs(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    kind, n_class = step["kind"], job["n_class"]
    model = observe.build(namespace, kind, n_class, default_init=False)
    return observe.observe_outputs(model, kind, job["seed"], tuple(job["equivalence_size"]), n_class)


def _copy_params(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    return observe.observe_copy(namespace, step["kind"], job["seed"], job["n_class"], vgg=vgg.get())


def _expected_copy(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    """The reference's own job: what a correct copy leaves."""
    return CopyParams(own=False, layers=seeded_copy(job["seed"]))


def _predict(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    images = torch.load(_file(fds["images"]), weights_only=True)
    return observe_predictions(namespace, step["kind"], job["n_class"], _file(fds[step["checkpoint"]]), images,
                               job["device"])


# the op of a step -> what the child runs for it (autograder.judging.observations names these ops)
STEPS = {"structure": _structure, "outputs": _outputs, "copy_params": _copy_params, "expected_copy": _expected_copy,
         "predict": _predict}


def run_step(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    """The record of one step of ``job`` (``step["op"]``, one of :data:`STEPS`) observed on the
    submission's ``namespace``."""
    if step["op"] not in STEPS:
        raise ValueError(f"unknown step {step['op']!r}")
    return STEPS[step["op"]](step, job, namespace, vgg, fds)


def _file(fd: int):
    """A file the grader opened and passed in (the child cannot open it by path), from its start."""
    f = os.fdopen(os.dup(fd), "rb")
    f.seek(0)
    return f
