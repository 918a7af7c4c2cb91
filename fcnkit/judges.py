"""The verdicts that need no reference solution, with the messages the grader gives.

Each ``judge_*`` function reads an observation record (:mod:`fcnkit.records`) and returns a short
success message or raises :class:`CheckFailed` with what to fix. The grader calls them on what its
sandboxed child observed (and adds the verdicts that need the reference); the notebook's test cells
call them on an observation made in the notebook (:mod:`fcnkit.checks`). numpy only: the grader's
own process never imports torch.
"""
from __future__ import annotations

import numpy as np

from .records import CopyParams, Outputs, Structure
from .spec import MODEL_CLASSES, N_CLASS, UPSAMPLINGS, VGG_CHANNELS, VGG_CONV_NAMES, upsampling_weight

OUTPUT_SIZES = ((17, 24), (96, 131), (250, 161))  # small, odd, even, non-square, large


class CheckFailed(AssertionError):
    """A check did not pass; the message tells the student what to fix."""


def _fail_if(problems: list[str], what: str) -> None:
    if problems:
        raise CheckFailed(f"{what}: " + "; ".join(problems) + ".")


def _shape(layer) -> str:
    if layer.type in ("Conv2d", "ConvTranspose2d"):
        return (f"{layer.type}({layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size[0]}, "
                f"stride={layer.stride[0]}, padding={layer.padding[0]}, bias={layer.bias})")
    return layer.type


def _expect(problems, layer, name, kind, in_ch, out_ch, k, stride=1, padding=None, bias=True) -> None:
    if layer is None:
        problems.append(f"no layer named {name}")
        return
    ok = (layer.type == kind and (layer.in_channels, layer.out_channels) == (in_ch, out_ch)
          and layer.kernel_size == [k, k] and layer.stride == [stride, stride]
          and (padding is None or layer.padding == [padding, padding]) and layer.bias == bias)
    if not ok:
        want = f"{kind}({in_ch}, {out_ch}, kernel_size={k}, stride={stride}"
        want += f", padding={padding}" if padding is not None else ""
        problems.append(f"{name} is {_shape(layer)}; expected {want}, bias={bias})")


# ----------------------------------------------------------------------------------- structure
def judge_vgg_layers(s: Structure, n_class: int = N_CLASS) -> str:
    layers = {layer.name: layer for layer in s.layers}
    problems: list[str] = []
    for name, (in_ch, out_ch) in zip(VGG_CONV_NAMES, VGG_CHANNELS):
        _expect(problems, layers.get(name), name, "Conv2d", in_ch, out_ch, 3, padding=100 if name == "conv1_1" else 1)
    for i in range(1, 6):
        pool = layers.get(f"pool{i}")
        if pool is None or pool.type != "MaxPool2d":
            problems.append(f"pool{i} should be nn.MaxPool2d(2, stride=2, ceil_mode=True)")
        elif not (pool.kernel_size == [2, 2] and pool.stride == [2, 2]):
            problems.append(f"pool{i} should have kernel_size=2, stride=2")
        elif not pool.ceil_mode:
            problems.append(f"pool{i} needs ceil_mode=True (it keeps odd-sized maps aligned with the crops)")
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} VGG-16 layers")
    return "all 13 conv layers and 5 pools match VGG-16 (conv1_1 padding 100, ceil-mode pools)"


def _in_use(s: Structure) -> tuple[list, list]:
    """The layers forward uses, and the ones registered but never called. When forward could not
    run, every registered layer counts as used."""
    if s.forward_error or not any(layer.called for layer in s.layers):
        return s.layers, []
    return [l for l in s.layers if l.called], [l for l in s.layers if not l.called]


def judge_head(s: Structure, n_class: int = N_CLASS) -> str:
    layers = {layer.name: layer for layer in s.layers}
    used, unused = _in_use(s)
    problems: list[str] = []
    _expect(problems, layers.get("fc6"), "fc6", "Conv2d", 512, 4096, 7, padding=0)
    _expect(problems, layers.get("fc7"), "fc7", "Conv2d", 4096, 4096, 1, padding=0)
    scorers = {"score": 4096, **({"score_pool4": 512, "score_pool3": 256} if s.kind == "fcn8s" else {})}
    for role, in_ch in scorers.items():
        found = [l for l in used if l.type == "Conv2d" and l.name not in ("fc6", "fc7") and l.kernel_size == [1, 1]
                 and (l.in_channels, l.out_channels) == (in_ch, n_class)]
        if len(found) != 1:
            problems.append(f"expected one 1x1 Conv2d({in_ch}, {n_class}) for {role}, found {len(found)}")
    ups = [l for l in used if l.type == "ConvTranspose2d"]
    got = sorted((l.kernel_size[0], l.stride[0]) for l in ups)
    if got != sorted(UPSAMPLINGS[s.kind]):
        want = ", ".join(f"kernel {k} stride {st}" for k, st in UPSAMPLINGS[s.kind])
        problems.append(f"expected ConvTranspose2d layers with {want}; found {got or 'none'}")
    for l in ups:
        if l.bias:
            problems.append(f"{l.name} must not have a bias (bias=False)")
        if (l.in_channels, l.out_channels) != (n_class, n_class):
            problems.append(f"{l.name} maps {l.in_channels} to {l.out_channels} channels; expected {n_class} to {n_class}")
        elif l.name not in s.upsampling_weights:
            problems.append(f"{l.name} is too large to check")
        elif not np.allclose(s.upsampling_weights[l.name], upsampling_weight(n_class, n_class, l.kernel_size[0]),
                             atol=1e-6):
            problems.append(f"{l.name} is not initialised to bilinear upsampling (use get_upsampling_weight)")
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} head")
    message = "fc6, fc7, score layers and bilinear transposed convolutions are as specified"
    spare = [l.name for l in unused if l.type in ("Conv2d", "ConvTranspose2d")]
    if spare:
        message += f" (note: {', '.join(spare[:5])} {'is' if len(spare) == 1 else 'are'} registered but never used in forward)"
    return message


def judge_output_shape(s: Structure, n_class: int = N_CLASS, sizes=OUTPUT_SIZES) -> str:
    name = MODEL_CLASSES[s.kind]
    if s.forward_error:
        raise CheckFailed(s.forward_error)
    problems = []
    for (h, w), shape in zip(sizes, s.output_shapes, strict=True):
        if shape != [1, n_class, h, w]:
            problems.append(f"input 1x3x{h}x{w} gave {'x'.join(map(str, shape))}, expected 1x{n_class}x{h}x{w}")
    _fail_if(problems, f"{name} output shape (check the final crop)")
    how = "" if s.forward_device == "meta" else " (measured with real tensors: forward does not run on the meta device)"
    return f"output is N x {n_class} x H x W for inputs " + ", ".join(f"{h}x{w}" for h, w in sizes) + how


# ----------------------------------------------------------------------------------- behaviour
def judge_determinism(o: Outputs) -> str:
    """In eval mode the same input must give the same output (dropout off)."""
    name = MODEL_CLASSES[o.kind]
    if o.output is None or o.repeat is None:
        raise CheckFailed(o.error or f"{name} produced no output.")
    if o.output.shape != o.repeat.shape or not np.array_equal(o.output, o.repeat):
        raise CheckFailed(f"{name} gives different outputs for the same input in eval mode: dropout (or other "
                          f"randomness) is active; use nn.Dropout modules, or F.dropout(..., training=self.training).")
    return "the output does not change between calls in eval mode"


def judge_copy_params(c: CopyParams, expected: dict) -> str:
    """The copied layers hold VGG-16's weights (fc6 / fc7 reshaped). Without a function of its own
    the submission is checked with fcnkit's, which needs the layer names and shapes of the text."""
    whose = "copy_params_from_vgg16" if c.own else "fcnkit's copy_params_from_vgg16 (your model has no copy of its own)"
    if c.error:
        raise CheckFailed(c.error)
    problems = []
    for name, want in expected.items():
        got = c.layers.get(name)
        if got is None or got.numel != want.numel:
            problems.append(f"{name} is missing or has the wrong size")
        elif not (np.array_equal(got.weight_samples, want.weight_samples) and np.array_equal(got.bias, want.bias)
                  and np.isclose(got.weight_sum, want.weight_sum, rtol=1e-9, atol=1e-6)):
            problems.append(f"{name} was not copied" + (" (reshape the linear weight with .view)" if name.startswith("fc") else ""))
    _fail_if(problems, whose)
    return "copies all 13 conv layers and reshapes fc6 / fc7" + ("" if c.own else " (with fcnkit's copy_params_from_vgg16)")
