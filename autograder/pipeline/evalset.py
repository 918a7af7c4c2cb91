"""The evaluation set the trained weights are evaluated on in the grading child."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..isolation import tempdirs


@dataclass
class EvalSet:
    """The images the trained checkpoints are evaluated on, with labels kept in the grader's process."""
    images_file: Path  # what the sandboxed child reads
    labels: list  # numpy label maps
    size: int
    hidden: list[Path]  # the dataset folder, which submissions may not read while graded
    ids: list[str] = field(default_factory=list)  # the images' ids, in order
    scale: float = 0.5

    @classmethod
    def load(cls, root=None, split: str = "test", scale: float = 0.5, workdir: Path | None = None) -> "EvalSet":
        # torch (and fcnkit.data, which imports it) here only: the grading process imports torch
        # only when the run evaluates checkpoints (--checkpoints), never to grade the rest
        import torch
        from fcnkit.data import cmp_splits, data_root, eval_split
        root = data_root(root)
        images, labels = eval_split(root, split, scale)
        ids = [p.stem for p in cmp_splits(root)[split]]
        workdir = Path(workdir or tempdirs.make("fcnkit-eval-"))
        workdir.mkdir(parents=True, exist_ok=True)
        images_file = workdir / f"{split}_images.pt"
        torch.save(images, images_file)
        os.chmod(workdir, 0o755)
        os.chmod(images_file, 0o644)
        return cls(images_file, labels, len(images), hidden=[root], ids=ids, scale=scale)
