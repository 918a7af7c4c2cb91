"""The checks behind every automatic point. The notebook's test cells and ``python -m autograder``
call the same functions, so a student sees in the notebook exactly what the grader will say.

Each check takes a :class:`Submission` (the namespace where ``FCN32s`` / ``FCN8s`` are defined) and
either returns a short success message or raises :class:`CheckFailed` with what to fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fcnkit.data import N_CLASS
from fcnkit.metrics import ConfusionMatrix
from fcnkit.vgg import VGG_CONV_NAMES, get_upsampling_weight

from .reference import models as reference
from .rubric import ITEMS, MODEL_CLASSES, miou_thresholds

VGG_CHANNELS = ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512))
OUTPUT_SIZES = ((17, 24), (96, 131), (250, 161))  # small, odd, even, non-square, large
EQUIVALENCE_SIZES = ((75, 93),)


class CheckFailed(AssertionError):
    """A check did not pass; the message tells the student what to fix."""


@dataclass
class Submission:
    """The names a submission defines, with its models built once and reused by every check."""
    namespace: dict
    n_class: int = N_CLASS
    _models: dict = field(default_factory=dict)

    def model(self, kind: str) -> nn.Module:
        """A fresh-from-constructor model of ``kind`` ("fcn32s" / "fcn8s"), in eval mode."""
        if kind not in self._models:
            try:
                self._models[kind] = self._build(kind)
            except CheckFailed as err:
                self._models[kind] = err
        built = self._models[kind]
        if isinstance(built, CheckFailed):
            raise built
        return built

    def _build(self, kind: str) -> nn.Module:
        name = MODEL_CLASSES[kind]
        cls = self.namespace.get(name)
        if cls is None:
            raise CheckFailed(f"No class named {name} was found; define `class {name}(nn.Module)`.")
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise CheckFailed(f"{name} must be a class deriving from torch.nn.Module.")
        attempts = (((), {"n_class": self.n_class}), ((self.n_class,), {}), ((), {}))
        errors = []
        for args, kwargs in attempts:
            try:
                return cls(*args, **kwargs).eval()
            except TypeError as err:  # a different signature: try the next one
                errors.append(err)
            except Exception as err:
                raise CheckFailed(_raised(f"{name}(n_class={self.n_class})", err)) from None
        raise CheckFailed(f"{name} could not be built as {name}(n_class={self.n_class}): {errors[0]}")

    def own_function(self, name: str, kind: str):
        """The submission's own ``name`` (a method of the model class or a function), or None when
        it uses fcnkit's."""
        cls = self.namespace.get(MODEL_CLASSES[kind])
        for klass in getattr(cls, "__mro__", ()):
            if klass is not nn.Module and name in vars(klass):
                return lambda model, vgg: getattr(model, name)(vgg)
        fn = self.namespace.get(name)
        if callable(fn) and not getattr(fn, "__module__", "").startswith("fcnkit"):
            return fn
        return None


def _raised(what: str, err: BaseException) -> str:
    hint = " Finish the parts marked YOUR CODE HERE." if isinstance(err, NotImplementedError) else ""
    return f"{what} raised {type(err).__name__}: {err}.{hint}".replace(": .", ".")


def _layer(model: nn.Module, name: str):
    return getattr(model, name, None) if isinstance(getattr(model, name, None), nn.Module) else None


def _shape(m: nn.Module) -> str:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return (f"{type(m).__name__}({m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size[0]}, "
                f"stride={m.stride[0]}, padding={m.padding[0]}, bias={m.bias is not None})")
    return type(m).__name__


def _expect(problems: list[str], m, name: str, kind, in_ch, out_ch, k, stride=1, padding=None, bias=True):
    if m is None:
        problems.append(f"no layer named {name}")
        return
    ok = (isinstance(m, kind) and (m.in_channels, m.out_channels) == (in_ch, out_ch)
          and m.kernel_size == (k, k) and m.stride == (stride, stride)
          and (padding is None or m.padding == (padding, padding)) and (m.bias is not None) == bias)
    if not ok:
        want = f"{kind.__name__}({in_ch}, {out_ch}, kernel_size={k}, stride={stride}"
        want += f", padding={padding}" if padding is not None else ""
        problems.append(f"{name} is {_shape(m)}; expected {want}, bias={bias})")


def _fail_if(problems: list[str], what: str) -> None:
    if problems:
        raise CheckFailed(f"{what}: " + "; ".join(problems) + ".")


# ----------------------------------------------------------------------------------- structure
def check_vgg_layers(sub: Submission, kind: str) -> str:
    model = sub.model(kind)
    problems = []
    for name, (in_ch, out_ch) in zip(VGG_CONV_NAMES, VGG_CHANNELS):
        padding = 100 if name == "conv1_1" else 1
        _expect(problems, _layer(model, name), name, nn.Conv2d, in_ch, out_ch, 3, padding=padding)
    for i in range(1, 6):
        pool = _layer(model, f"pool{i}")
        if not isinstance(pool, nn.MaxPool2d):
            problems.append(f"pool{i} should be nn.MaxPool2d(2, stride=2, ceil_mode=True)")
        elif not (pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))):
            problems.append(f"pool{i} should have kernel_size=2, stride=2")
        elif not pool.ceil_mode:
            problems.append(f"pool{i} needs ceil_mode=True (it keeps odd-sized maps aligned with the crops)")
    _fail_if(problems, f"{MODEL_CLASSES[kind]} VGG-16 layers")
    return "all 13 conv layers and 5 pools match VGG-16 (conv1_1 padding 100, ceil-mode pools)"


def _convs(model: nn.Module, in_ch: int, out_ch: int, skip=("fc6", "fc7")):
    return [(n, m) for n, m in model.named_modules()
            if type(m) is nn.Conv2d and n not in skip and m.kernel_size == (1, 1)
            and (m.in_channels, m.out_channels) == (in_ch, out_ch)]


def _transposes(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ConvTranspose2d)]


def check_head(sub: Submission, kind: str) -> str:
    model, n = sub.model(kind), sub.n_class
    problems: list[str] = []
    _expect(problems, _layer(model, "fc6"), "fc6", nn.Conv2d, 512, 4096, 7, padding=0)
    _expect(problems, _layer(model, "fc7"), "fc7", nn.Conv2d, 4096, 4096, 1, padding=0)
    scorers = {"score": 4096}
    if kind == "fcn8s":
        scorers.update({"score_pool4": 512, "score_pool3": 256})
    for role, in_ch in scorers.items():
        found = _convs(model, in_ch, n)
        if len(found) != 1:
            problems.append(f"expected one 1x1 Conv2d({in_ch}, {n}) for {role}, found {len(found)}")
    expected = [(64, 32)] if kind == "fcn32s" else [(4, 2), (4, 2), (16, 8)]
    ups = _transposes(model)
    got = sorted((m.kernel_size[0], m.stride[0]) for _, m in ups)
    if got != sorted(expected):
        want = ", ".join(f"kernel {k} stride {s}" for k, s in expected)
        problems.append(f"expected ConvTranspose2d layers with {want}; found {got or 'none'}")
    for name, m in ups:
        if m.bias is not None:
            problems.append(f"{name} must not have a bias (bias=False)")
        if (m.in_channels, m.out_channels) != (n, n):
            problems.append(f"{name} maps {m.in_channels} to {m.out_channels} channels; expected {n} to {n}")
        elif not torch.allclose(m.weight.detach().cpu(), get_upsampling_weight(n, n, m.kernel_size[0]), atol=1e-6):
            problems.append(f"{name} is not initialised to bilinear upsampling (use get_upsampling_weight)")
    _fail_if(problems, f"{MODEL_CLASSES[kind]} head")
    return "fc6, fc7, score layers and bilinear transposed convolutions are as specified"


# ----------------------------------------------------------------------------------- behaviour
def _forward(model: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = model(x.clone())
    except Exception as err:
        raise CheckFailed(_raised(f"{what} on an input of shape {tuple(x.shape)}", err)) from None
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what} returned {type(out).__name__}; it must return a tensor of scores.")
    return out


def check_output_shape(sub: Submission, kind: str) -> str:
    model, name = sub.model(kind), MODEL_CLASSES[kind]
    problems = []
    for h, w in OUTPUT_SIZES:
        out = _forward(model, torch.randn(1, 3, h, w), f"{name}.forward")
        if tuple(out.shape) != (1, sub.n_class, h, w):
            problems.append(f"input 1x3x{h}x{w} gave {'x'.join(map(str, out.shape))}, "
                            f"expected 1x{sub.n_class}x{h}x{w}")
    _fail_if(problems, f"{name} output shape (check the final crop)")
    return f"output is N x {sub.n_class} x H x W for inputs " + ", ".join(f"{h}x{w}" for h, w in OUTPUT_SIZES)


def _reference(kind: str, n_class: int, seed: int = 0) -> nn.Module:
    """The reference model with random (He-uniform) weights, built without the cost of its init."""
    with torch.device("meta"):
        model = reference.MODELS[kind](n_class)
    model = model.to_empty(device="cpu").eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                bound = math.sqrt(6 / fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1, generator=gen)
    return model


def _role_map(model: nn.Module, kind: str, n: int) -> list[dict[str, nn.Module]]:
    """Candidate maps from the reference's layer names to the submission's layers, found by
    structure (so any name works for the extra layers). Two k4 upsamplings give two candidates."""
    roles = {name: _layer(model, name) for name in (*VGG_CONV_NAMES, "fc6", "fc7")}
    missing = [name for name, m in roles.items() if m is None]
    if missing:
        raise CheckFailed(f"cannot compare: no layer named {', '.join(missing)}.")

    def one(found, what):
        if len(found) != 1:
            raise CheckFailed(f"cannot compare: expected exactly one {what}, found {len(found)}.")
        return found[0][1]
    roles["score"] = one(_convs(model, 4096, n), f"1x1 Conv2d(4096, {n}) (score)")
    ups = _transposes(model)
    if kind == "fcn32s":
        roles["upscore"] = one([u for u in ups if u[1].kernel_size == (64, 64)], "ConvTranspose2d with kernel 64")
        return [roles]
    roles["score_pool4"] = one(_convs(model, 512, n), f"1x1 Conv2d(512, {n}) (score_pool4)")
    roles["score_pool3"] = one(_convs(model, 256, n), f"1x1 Conv2d(256, {n}) (score_pool3)")
    roles["upscore8"] = one([u for u in ups if u[1].kernel_size == (16, 16)], "ConvTranspose2d with kernel 16")
    k4 = [m for _, m in ups if m.kernel_size == (4, 4)]
    if len(k4) != 2:
        raise CheckFailed(f"cannot compare: expected two ConvTranspose2d with kernel 4, found {len(k4)}.")
    return [{**roles, "upscore2": a, "upscore_pool4": b} for a, b in (k4, k4[::-1])]


def _copy_weights(ref: nn.Module, roles: dict[str, nn.Module]) -> None:
    with torch.no_grad():
        for name, dst in roles.items():
            src = getattr(ref, name)
            if dst.weight.shape != src.weight.shape:
                raise CheckFailed(f"cannot compare: the layer used as {name} has weight shape "
                                  f"{tuple(dst.weight.shape)}, expected {tuple(src.weight.shape)}.")
            dst.weight.copy_(src.weight)
            if dst.bias is not None:
                dst.bias.copy_(src.bias if src.bias is not None else torch.zeros_like(dst.bias))
            elif src.bias is not None:
                raise CheckFailed(f"cannot compare: the layer used as {name} has no bias.")


def check_equivalence(sub: Submission, kind: str) -> str:
    """Give the submission the reference's (random) weights and compare outputs: catches wrong
    crop offsets, a missing ReLU, a swapped skip, dropout active in eval mode..."""
    model, name = sub.model(kind), MODEL_CLASSES[kind]
    ref = _reference(kind, sub.n_class)
    gen = torch.Generator().manual_seed(1)
    inputs = [torch.randn(1, 3, h, w, generator=gen) for h, w in EQUIVALENCE_SIZES]
    with torch.no_grad():
        expected = [ref(x) for x in inputs]
    worst = None
    for roles in _role_map(model, kind, sub.n_class):
        _copy_weights(ref, roles)
        diffs = []
        for x, want in zip(inputs, expected):
            got = _forward(model, x, f"{name}.forward")
            if got.shape != want.shape:
                diffs.append(math.inf)
                continue
            diffs.append(float((got - want).abs().max() / want.abs().max().clamp(min=1e-12)))
        if max(diffs) < 1e-4:
            return "matches the reference output with the same weights"
        worst = max(diffs) if worst is None else min(worst, max(diffs))
    again = _forward(model, inputs[0], f"{name}.forward")
    if not torch.equal(again, _forward(model, inputs[0], f"{name}.forward")):
        raise CheckFailed(f"{name} gives different outputs for the same input in eval mode: dropout (or other "
                          f"randomness) is active; use nn.Dropout modules, or F.dropout(..., training=self.training).")
    hint = ("check the crop offsets (19 for FCN-32s; 5, 9 and 31 for FCN-8s), that every conv is followed "
            "by its ReLU, the order of the skip connections, and that dropout is an nn.Dropout module")
    if worst == math.inf:
        raise CheckFailed(f"{name} output shape differs from the reference's; {hint}.")
    raise CheckFailed(f"{name} output differs from the reference's by {worst:.2g} (relative) with the same "
                      f"weights; {hint}.")


def _random_vgg16() -> nn.Module:
    from torchvision.models import vgg16
    with torch.device("meta"):
        vgg = vgg16()
    vgg = vgg.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in vgg.parameters():
            p.uniform_(-1, 1, generator=gen)
    return vgg


def check_copy_params(sub: Submission, kind: str) -> str:
    model = sub.model(kind)
    copy = sub.own_function("copy_params_from_vgg16", kind)
    if copy is None:
        return "uses fcnkit.copy_params_from_vgg16 (nothing of its own to check)"
    vgg = _random_vgg16()
    try:
        with torch.no_grad():
            copy(model, vgg)
    except Exception as err:
        raise CheckFailed(_raised("copy_params_from_vgg16(model, vgg16)", err)) from None
    problems = []
    convs = [m for m in vgg.features if isinstance(m, nn.Conv2d)]
    pairs = list(zip(VGG_CONV_NAMES, convs)) + [("fc6", vgg.classifier[0]), ("fc7", vgg.classifier[3])]
    for name, src in pairs:
        dst = _layer(model, name)
        if dst is None or dst.weight.numel() != src.weight.numel():
            problems.append(f"{name} is missing or has the wrong size")
        elif not (torch.equal(dst.weight.flatten(), src.weight.flatten()) and torch.equal(dst.bias, src.bias)):
            problems.append(f"{name} was not copied" + (" (reshape the linear weight with .view)" if name.startswith("fc") else ""))
    _fail_if(problems, "copy_params_from_vgg16")
    return "copies all 13 conv layers and reshapes fc6 / fc7"


# ----------------------------------------------------------------------------------- trained weights
def eval_split(root, split: str = "test", scale: float = 0.5) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Images (normalised tensors) and label maps of one split, for the mIoU checks."""
    from fcnkit.data import CMPFacade, cmp_splits
    dataset = CMPFacade(cmp_splits(root)[split], scale=scale)
    pairs = [dataset[i] for i in range(len(dataset))]
    return [x for x, _ in pairs], [y.numpy() for _, y in pairs]


@torch.no_grad()
def predict(model: nn.Module, images, device: str | torch.device = "cpu") -> list[np.ndarray]:
    """Class index maps (uint8) of ``model`` for each image tensor (3, H, W)."""
    model.eval().to(device)
    return [model(x[None].to(device)).argmax(1)[0].to(torch.uint8).cpu().numpy() for x in images]


def score_predictions(predictions, labels, n_class: int = N_CLASS) -> dict:
    """fcnkit metrics of predicted maps against label maps (any shape mismatch fails)."""
    cm = ConfusionMatrix(n_class)
    for pred, label in zip(predictions, labels, strict=True):
        pred, label = torch.as_tensor(np.asarray(pred)), torch.as_tensor(np.asarray(label))
        if pred.shape != label.shape:
            raise CheckFailed(f"a prediction is {tuple(pred.shape)} for a label of {tuple(label.shape)}.")
        cm.update(pred, label)
    return cm.compute()


def judge_miou(kind: str, scores: dict, threshold: float | None = None) -> str:
    threshold = miou_thresholds()[kind] if threshold is None else threshold
    miou = scores["mean_iou"]
    if not miou >= threshold:
        raise CheckFailed(f"{MODEL_CLASSES[kind]} reaches test mIoU {miou:.3f}, below the threshold "
                          f"{threshold:.2f}; train longer or start from ImageNet VGG-16 weights.")
    return f"test mIoU {miou:.3f} >= {threshold:.2f} (pixel accuracy {scores['pixel_acc']:.3f})"


def load_weights(model: nn.Module, path) -> nn.Module:
    """Load a submitted checkpoint safely: a state_dict (or {"state_dict": ...}), weights only."""
    from fcnkit.train import load_checkpoint
    try:
        load_checkpoint(path, model)
    except FileNotFoundError:
        raise CheckFailed(f"checkpoint {path} not found; save model.state_dict() there.") from None
    except RuntimeError as err:
        if "state_dict" not in str(err):
            raise
        first = str(err).strip().splitlines()
        raise CheckFailed(f"checkpoint {path} does not fit the model: {' '.join(first[:3])[:400]}") from None
    except Exception as err:  # a pickled object, a corrupt file...
        raise CheckFailed(f"checkpoint {path} is not a plain state_dict ({type(err).__name__}: "
                          f"{str(err)[:200]}); save with torch.save(model.state_dict(), path).") from None
    return model


def check_miou(sub: Submission, kind: str, checkpoint, images, labels, device="cpu",
               threshold: float | None = None) -> str:
    """In-process version (the notebook's): load, predict, score, compare with the threshold."""
    model = load_weights(sub.model(kind), checkpoint)
    return judge_miou(kind, score_predictions(predict(model, images, device), labels, sub.n_class), threshold)


def build_model(kind: str, namespace: dict) -> nn.Module:
    """The notebook's quick checks: build ``FCN32s`` / ``FCN8s`` (eval mode) as the grader does, with
    its clear message when that fails."""
    return Submission(namespace).model(kind)


CHECKS = {
    "vgg_layers": check_vgg_layers, "head": check_head, "output_shape": check_output_shape,
    "equivalence": check_equivalence, "copy_params": check_copy_params, "miou": check_miou,
}


def check(name: str, namespace: dict | Submission, **kwargs) -> None:
    """Run one rubric item (e.g. ``check("fcn8s_head", globals())``) the way the grader does:
    prints the result and raises CheckFailed when it does not pass. (It returns nothing, so that a
    notebook test cell has no output value for nbgrader to read as partial credit.)"""
    item = ITEMS[name]
    sub = namespace if isinstance(namespace, Submission) else Submission(namespace)
    message = CHECKS[name.split("_", 1)[1]](sub, item.model, **kwargs)
    print(f"PASS {item.title} ({item.points} points): {message}")
