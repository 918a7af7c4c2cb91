"""Train the reference FCNs with the original recipe or ours, and record what an instructor needs to
know: test scores, the validation curve, seconds per epoch, peak GPU memory."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fcnkit.data import N_CLASS, Augment, cmp_splits, make_loaders
from fcnkit.train import fit, resolve_device, save_checkpoint, seed_everything
from fcnkit.vgg import copy_params_from_vgg16, load_vgg16
from .models import MODELS


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float = 1e-4
    head_lr: float | None = None  # learning rate of the new layers (score*), if different
    weight_decay: float = 0.0
    batch_size: int = 1
    augment: bool = False
    crop: int | None = None
    schedule: str = "constant"  # or "onecycle"
    freeze_upsampling: bool = False  # keep the transposed convolutions bilinear
    trainable: tuple[str, ...] = ()  # train only the layers with these name prefixes (default: all)
    amp: bool = False


RECIPES = {
    # The original course notebook: Adam 1e-4, batch 1, constant rate, no augmentation.
    "original": Recipe("original"),
    # Ours: a 10x rate for the freshly initialised score layers, flips / rescaling / crops batched by 4,
    # a one-cycle schedule, fixed bilinear upsampling (as in the paper's released models), bf16 on CUDA.
    "improved": Recipe("improved", lr=1e-4, head_lr=1e-3, weight_decay=1e-4, batch_size=4, augment=True, crop=256,
                       schedule="onecycle", freeze_upsampling=True, amp=True),
}


def build(model: str, init: str, n_class: int = N_CLASS) -> torch.nn.Module:
    """A reference model; ``init`` is "scratch", "imagenet" or the path of a VGG-16 state_dict."""
    net = MODELS[model](n_class)
    if init != "scratch":
        copy_params_from_vgg16(net, load_vgg16(init))
    return net


def _optimizer(net: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    for m in net.modules():
        if recipe.freeze_upsampling and isinstance(m, torch.nn.ConvTranspose2d):
            m.requires_grad_(False)
    if recipe.trainable:
        for name, p in net.named_parameters():
            p.requires_grad_(p.requires_grad and name.startswith(recipe.trainable))
    head = [p for n, p in net.named_parameters() if n.startswith("score") and p.requires_grad]
    body = [p for n, p in net.named_parameters() if not n.startswith("score") and p.requires_grad]
    groups = [{"params": body, "lr": recipe.lr}, {"params": head, "lr": recipe.head_lr or recipe.lr}]
    return torch.optim.AdamW(groups, weight_decay=recipe.weight_decay) if recipe.weight_decay \
        else torch.optim.Adam(groups)


def train_reference(model: str, init: str, epochs: int, out: Path, recipe: str | Recipe = "original",
                    data_root=None, scale: float = 0.5, device: str = "auto", limit: int | None = None,
                    max_steps: int | None = None, seed: int = 0, progress: bool = True) -> dict:
    """Train, save ``out/<model>.pt`` (best by validation mIoU) and ``out/<model>_metrics.json``."""
    seed_everything(seed)
    device = resolve_device(device)
    r = RECIPES[recipe] if isinstance(recipe, str) else recipe
    splits = cmp_splits(data_root)
    augment = Augment(crop=r.crop) if r.augment else None
    loaders = make_loaders(splits, scale=scale, batch_size=r.batch_size, augment=augment, limit=limit)
    net = build(model, init)
    optimizer = _optimizer(net, r)
    steps = epochs * min(len(loaders["train"]), max_steps or len(loaders["train"]))
    scheduler = None
    if r.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=max(steps, 1), pct_start=0.1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    result = fit(net, loaders["train"], loaders["val"], n_class=N_CLASS, epochs=epochs, optimizer=optimizer,
                 scheduler=scheduler, test_loader=loaders["test"], device=device, amp=r.amp, max_steps=max_steps,
                 progress=progress)
    elapsed = time.perf_counter() - start
    out = Path(out)
    checkpoint = save_checkpoint(out / f"{model}.pt", result.model, n_class=N_CLASS, epoch=result.best_epoch,
                                 val_miou=result.best_val_miou, scale=scale, recipe=r.name, init=str(init))
    seconds, reached = 0.0, {}
    for entry in result.history:  # training time until the validation mIoU first reaches each level
        seconds += entry["seconds"]
        for level in (0.3, 0.4, 0.5, 0.55, 0.6):
            if entry["val_miou"] >= level:
                reached.setdefault(str(level), round(seconds, 1))
    metrics = {
        "model": model, "init": str(init), "recipe": asdict(r), "epochs": epochs, "image_scale": scale,
        "train_images": len(loaders["train"].dataset), "max_steps": max_steps,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "test": result.test, "best_epoch": result.best_epoch, "best_val_miou": result.best_val_miou,
        "val_curve": result.history, "seconds_per_epoch": elapsed / max(epochs, 1),
        "seconds_to_val_miou": reached, "train_seconds": elapsed,
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "checkpoint": str(checkpoint),
    }
    (out / f"{model}_metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
