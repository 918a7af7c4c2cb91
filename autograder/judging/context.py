"""What the judgements of one grading run share (:class:`Context`)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fcnkit._grading.records import Outputs
from fcnkit.spec import N_CLASS


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class Context:
    """What the judgements of one grading run share: the seed the child's weights and inputs were
    drawn from, and the reference's observations for it: observed once per run by a child of the
    warm worker (:meth:`autograder.pipeline.run.GradingRun.start`), else computed here on first use."""
    seed: int
    n_class: int = N_CLASS
    labels: list | None = None  # label maps of the evaluation split, for the mIoU items
    reference: dict = field(default_factory=dict)  # "fcn32s" / "fcn8s": Outputs, "copy": CopyParams
    observed: threading.Event = field(default_factory=lambda: _set(threading.Event()))  # clear while being observed
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reference_outputs(self, kind: str) -> Outputs:
        self.observed.wait()
        with self._lock:
            if kind not in self.reference:
                from ..reference.observed import reference_outputs
                self.reference[kind] = reference_outputs(kind, self.seed, self.n_class)
            return self.reference[kind]

    def expected_copy(self) -> dict:
        self.observed.wait()
        with self._lock:
            if "copy" not in self.reference:
                from fcnkit._grading.records import CopyParams
                from fcnkit._grading.seeded import seeded_copy  # what a correct copy leaves, from the seed alone
                self.reference["copy"] = CopyParams(own=False, layers=seeded_copy(self.seed))
            return self.reference["copy"].layers
