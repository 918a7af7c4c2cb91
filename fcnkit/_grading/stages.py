"""The reference's activation at each stage an equivalence check compares (:data:`fcnkit.spec.STAGES`), as
it is compared: its shape, its scale and its values, every one or those at fixed sampled positions (what
fcnkit ships for its public seed, ``reference_stages.npz``). numpy only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .records import Outputs
from ..spec import STAGES

SAMPLES_PER_STAGE = 8192  # a larger stage is shipped as its values at these many positions


def stage_positions(numel: int) -> np.ndarray | None:
    """Where a stage of ``numel`` values is sampled: None (every value) up to SAMPLES_PER_STAGE,
    else SAMPLES_PER_STAGE distinct positions spread over it (multiplicative hashing: no random
    generator whose sequence could change between numpy versions)."""
    if numel <= SAMPLES_PER_STAGE:
        return None
    return (np.arange(SAMPLES_PER_STAGE, dtype=np.int64) * 2654435761) % numel


@dataclass
class StageValues:
    """The reference's activation at one stage: its shape, its largest magnitude (what differences
    are relative to) and its values, every one or those at :func:`stage_positions`."""
    shape: tuple[int, ...]
    scale: float
    values: np.ndarray  # flat float32

    @classmethod
    def of(cls, array: np.ndarray, sampled: bool) -> "StageValues":
        flat = np.asarray(array, dtype=np.float32).reshape(-1)
        positions = stage_positions(flat.size) if sampled else None
        return cls(tuple(array.shape), float(np.abs(flat).max(initial=0.0)),
                   flat if positions is None else flat[positions])

    def difference(self, array: np.ndarray) -> float:
        """The largest difference from ``array`` (of the same shape), relative to the scale."""
        flat = np.asarray(array, dtype=np.float32).reshape(-1)
        if self.values.size != flat.size:
            flat = flat[stage_positions(flat.size)]
        return float(np.abs(flat - self.values).max(initial=0.0) / max(self.scale, 1e-12))


def stages_of(o: Outputs) -> dict[str, StageValues]:
    """Every value of every stage of an observation (the reference's: what the grader compares with)."""
    return {stage: StageValues.of(o.output if stage == "output" else o.stages[stage], sampled=False)
            for stage, _, _ in STAGES[o.kind] if (o.output if stage == "output" else o.stages.get(stage)) is not None}
