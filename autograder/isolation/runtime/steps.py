"""The observation steps of a grading child: what each step of a job runs on the submission's namespace, and
what the warm worker prepares once before it forks the children.

This runs only in the grader's child, from the runtime folder (as ``steps``): it is not in the student
wheel. The observing itself is fcnkit's (:data:`fcnkit._grading.observers.OBSERVERS`), so that the notebook's checks see a
model as the grader does.
"""
from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from fcnkit._grading.observers import OBSERVERS, Setup
from fcnkit._grading.records import CopyParams
from fcnkit._grading.seeded import PristineVGG, seeded_copy

__all__ = ["PristineVGG", "warm_up_meta", "run_step"]


def warm_up_meta() -> None:
    """Run each kind of layer an FCN has once on the meta device: torch loads what the meta device
    needs on first use (about a second), so a process that forks children pays it once for all."""
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2, ceil_mode=True),
                         nn.Dropout2d(), nn.Conv2d(4, 4, 1), nn.ConvTranspose2d(4, 4, 4, 2, bias=False)).eval()
    with torch.no_grad():
        x = tiny.to("meta")(torch.empty(1, 3, 9, 9, device="meta"))
        (x[:, :, 1:3, 1:3] + x[:, :, 0:2, 0:2]).contiguous()


def run_step(step: dict, job: dict, namespace: dict, vgg: PristineVGG, fds: dict[str, int]):
    """The record of one step of ``job`` observed on the submission's ``namespace``: ``step["op"]`` is a
    row of fcnkit's one table of observations (:data:`fcnkit._grading.observers.OBSERVERS`), or the reference's
    own job, ``expected_copy`` (what a correct copy leaves). The trained weights and the evaluation
    images come as files the grader opened (``fds``)."""
    op, kind = step["op"], step["kind"]
    if op == "expected_copy":
        return CopyParams(own=False, layers=seeded_copy(job["seed"]))
    if op not in OBSERVERS:
        raise ValueError(f"unknown step {op!r}")
    setup = Setup(seed=job["seed"], n_class=job["n_class"], vgg=vgg.get() if op == "copy_params" else None)
    if op == "predict":
        setup = dataclasses.replace(setup, checkpoint=_file(fds[step["checkpoint"]]), device=job["device"],
                                    images=torch.load(_file(fds["images"]), weights_only=True))
    return OBSERVERS[op](namespace, kind, setup)


def _file(fd: int):
    """A file the grader opened and passed in (the child cannot open it by path), from its start."""
    f = os.fdopen(os.dup(fd), "rb")
    f.seek(0)
    return f
