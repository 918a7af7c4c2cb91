"""The structural verdicts, with the messages the grader gives.

Each ``judge_*`` function reads an observation record (:mod:`fcnkit._grading.records`) and returns a short
success message or raises :class:`CheckFailed` with what to fix. The grader calls them on what its
sandboxed child observed, with the reference's activations for the seed it drew for the run; the
notebook's test cells and ``python -m fcnkit check`` call them on an observation made in the
student's own process, with the reference's activations for :data:`PUBLIC_SEED` shipped in fcnkit
(:mod:`fcnkit.reference`). numpy only: the grader's own process never imports torch.

When an earlier mistake makes a later check fail (conv1_1 without its padding of 100, pools without
ceil_mode, layers PyTorch cannot see), the later check names that cause first, not the error torch
raised because of it.
"""
from __future__ import annotations

import numpy as np

from .diagnoses import RECORDED, Diagnosis
from .records import CopyParams, Layer, Outputs, Structure
from .stages import StageValues
from ..spec import MODEL_CLASSES, N_CLASS, STAGES, UPSAMPLINGS, VGG_CHANNELS, VGG_CONV_NAMES, upsampling_weight

OUTPUT_SIZES = ((17, 24), (96, 131), (250, 161))  # small, odd, even, non-square, large
EQUIVALENCE_SIZE = (31, 47)  # the smallest inputs cost least; every catalogue mutant is still caught
PUBLIC_SEED = 0  # the seed of the reference activations fcnkit ships; the grader draws a fresh one per run
RELATIVE_TOLERANCE = 1e-4

# What to look at when a stage is the first to depart from the reference's activations.
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
    "sum after upscore_pool4": "check the crop of score_pool3 (expected offset 9) and that it is added to upscore_pool4",
    "upscore8": "upscore8 should upsample that sum",
    "upscore": "check upscore",
}
FINAL_CROP = {"fcn32s": 19, "fcn8s": 31}


def final_crop_hint(kind: str) -> str:
    return (f"check the final crop: it starts at offset {FINAL_CROP[kind]} and keeps as many rows and columns as "
            f"the input has")


class CheckFailed(AssertionError):
    """A check did not pass; the message tells the student what to fix, the diagnosis what was found
    (:mod:`fcnkit._grading.diagnoses`: data the class overview groups by)."""

    def __init__(self, message: str, diagnosis: Diagnosis | None = None):
        super().__init__(message)
        self.diagnosis = diagnosis


def recorded(diagnosis: list[str], fallback: Diagnosis) -> Diagnosis:
    """The diagnosis an observation recorded with its error (``[code, subject]``, a code an observer makes),
    else ``fallback``."""
    return Diagnosis.from_json(diagnosis, RECORDED) or fallback


REGISTER_HINT = ("only registered layers are seen: attributes or an nn.ModuleList, not a plain list; "
                 "a function such as F.interpolate is no layer")
MISSING = ("no layer named", "found none")  # what a layer PyTorch does not see looks like


Problems = list[tuple[Diagnosis, str]]  # what a judgement found wrong: each problem's diagnosis and words


def _fail_if(problems: Problems, what: str, unregistered=()) -> None:
    """Fail with every problem said; the diagnosis is the first one's (the layers PyTorch does not see
    first, when there are any: they are named first)."""
    if problems:
        diagnosis = Diagnosis("unregistered") if unregistered else problems[0][0]
        text = "; ".join(words for _, words in problems)
        raise CheckFailed(f"{what}: " + _unregistered(unregistered) + _missing(text, unregistered) + ".", diagnosis)


def _missing(text: str, unregistered) -> str:
    """``text``, with the question to ask when a layer is missing and no unregistered one was seen."""
    if unregistered or not any(m in text for m in MISSING):
        return text
    return f"{text[:-1]} ({REGISTER_HINT})." if text.endswith(".") else f"{text} ({REGISTER_HINT})"


def _unregistered(names) -> str:
    """The cause to name first when some modules are kept where PyTorch does not see them."""
    if not names:
        return ""
    listed = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    return (f"{listed} {'is' if len(names) == 1 else 'are'} not registered: a plain list (or dict) hides layers "
            f"from PyTorch (model.eval(), .to(), state_dict() and these checks skip them); use nn.ModuleList or "
            f"attributes. ")


def _root_causes(layers: list[Layer]) -> list[tuple[str, str]]:
    """(what, words) of each VGG-16 mistake that makes the later checks fail."""
    by_name = {layer.name: layer for layer in layers}
    causes = []
    conv = by_name.get("conv1_1")
    if conv is not None and conv.type == "Conv2d" and conv.padding and conv.padding != [100, 100]:
        causes.append(("conv1_1's padding", f"conv1_1 pads by {conv.padding[0]} instead of 100"))
    floor = [name for name in (f"pool{i}" for i in range(1, 6))
             if name in by_name and by_name[name].type == "MaxPool2d" and not by_name[name].ceil_mode]
    if floor:
        causes.append((f"{', '.join(floor)} without ceil_mode",
                       f"{', '.join(floor)} {'lacks' if len(floor) == 1 else 'lack'} ceil_mode=True"))
    return causes


def root_cause(layers: list[Layer], kind: str) -> str:
    """The VGG-16 mistakes that make the later checks fail (forward raises on small inputs, every
    size after pool1 is off), in words; "" when there are none."""
    return " and ".join(words for _, words in _root_causes(layers))


def root_diagnosis(layers: list[Layer]) -> Diagnosis:
    """:func:`root_cause` as a diagnosis (call it only when there is one)."""
    return Diagnosis("root_cause", " and ".join(what for what, _ in _root_causes(layers)))


def _first(cause: str, kind: str) -> str:
    return f"{cause} ({kind}_vgg_layers reports it): fix that first" if cause else ""


def _shape(layer) -> str:
    if layer.type in ("Conv2d", "ConvTranspose2d"):
        return (f"{layer.type}({layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size[0]}, "
                f"stride={layer.stride[0]}, padding={layer.padding[0]}, bias={layer.bias})")
    return layer.type


def _expect(problems: Problems, layer, name, kind, in_ch, out_ch, k, stride=1, padding=None, bias=True) -> None:
    if layer is None:
        problems.append((Diagnosis("missing_layer", name), f"no layer named {name}"))
        return
    ok = (layer.type == kind and (layer.in_channels, layer.out_channels) == (in_ch, out_ch)
          and layer.kernel_size == [k, k] and layer.stride == [stride, stride]
          and (padding is None or layer.padding == [padding, padding]) and layer.bias == bias)
    if not ok:
        want = f"{kind}({in_ch}, {out_ch}, kernel_size={k}, stride={stride}"
        want += f", padding={padding}" if padding is not None else ""
        problems.append((Diagnosis("wrong_layer", name), f"{name} is {_shape(layer)}; expected {want}, bias={bias})"))


# ----------------------------------------------------------------------------------- structure
def _one(pair: list[int]):
    """``[3, 3]`` as ``3``, as nn.MaxPool2d(3) is written; ``[3, 2]`` as ``(3, 2)``."""
    return pair[0] if len(set(pair)) == 1 else tuple(pair)


def judge_vgg_layers(s: Structure, n_class: int = N_CLASS) -> str:
    layers = {layer.name: layer for layer in s.layers}
    problems: Problems = []
    for name, (in_ch, out_ch) in zip(VGG_CONV_NAMES, VGG_CHANNELS):
        _expect(problems, layers.get(name), name, "Conv2d", in_ch, out_ch, 3, padding=100 if name == "conv1_1" else 1)
    floor = []
    for i in range(1, 6):
        pool = layers.get(f"pool{i}")
        if pool is None or pool.type != "MaxPool2d":
            problems.append((Diagnosis("wrong_layer", f"pool{i}"), f"pool{i} should be nn.MaxPool2d(2, stride=2, ceil_mode=True)"))
        elif not (pool.kernel_size == [2, 2] and pool.stride == [2, 2] and pool.padding in ([], [0, 0])):
            k, st, pad = (_one(v) for v in (pool.kernel_size, pool.stride, pool.padding or [0, 0]))
            problems.append((Diagnosis("wrong_layer", f"pool{i}"), f"pool{i} is MaxPool2d(kernel_size={k}, stride={st}, "
                             f"padding={pad}); expected kernel_size=2, stride=2, padding=0"))
        elif not pool.ceil_mode:
            floor.append(f"pool{i}")
    if floor:
        problems.append((Diagnosis("ceil_mode", ", ".join(floor)), f"{', '.join(floor)} {'needs' if len(floor) == 1 else 'need'} "
                         f"ceil_mode=True (it keeps odd-sized maps aligned with the crops)"))
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} VGG-16 layers", s.unregistered)
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
    problems: Problems = []
    _expect(problems, layers.get("fc6"), "fc6", "Conv2d", 512, 4096, 7, padding=0)
    _expect(problems, layers.get("fc7"), "fc7", "Conv2d", 4096, 4096, 1, padding=0)
    scorers = {"score": 4096, **({"score_pool4": 512, "score_pool3": 256} if s.kind == "fcn8s" else {})}
    for role, in_ch in scorers.items():
        found = [l for l in used if l.type == "Conv2d" and l.name not in ("fc6", "fc7") and l.kernel_size == [1, 1]
                 and (l.in_channels, l.out_channels) == (in_ch, n_class)]
        if len(found) != 1:
            others = sorted({f"Conv2d({l.in_channels}, {l.out_channels})" for l in used if l.type == "Conv2d"
                             and l.kernel_size == [1, 1] and l.in_channels == in_ch and l.out_channels != n_class
                             and l.name not in ("fc6", "fc7")})
            instead = f" (a 1x1 {' and '.join(others)} instead: {n_class} classes, one output channel each)" \
                if others and not found else ""
            problems.append((Diagnosis("score_layer", role),
                             f"expected one 1x1 Conv2d({in_ch}, {n_class}) for {role}, found {len(found)}{instead}"))
    ups = [l for l in used if l.type == "ConvTranspose2d"]
    got = sorted((l.kernel_size[0], l.stride[0]) for l in ups)
    if got != sorted(UPSAMPLINGS[s.kind]):
        want = ", ".join(f"kernel {k} stride {st}" for k, st in UPSAMPLINGS[s.kind])
        found = ", ".join(f"kernel {k} stride {st}" for k, st in got) or "none"
        problems.append((Diagnosis("upsampling_kernels"),
                         f"expected ConvTranspose2d layers with {want} (kernel = 2 x stride); found {found}"))
    for l in ups:
        if l.bias:
            problems.append((Diagnosis("upsampling_bias"), f"{l.name} must not have a bias (bias=False)"))
        if (l.in_channels, l.out_channels) != (n_class, n_class):
            problems.append((Diagnosis("upsampling_channels"),
                             f"{l.name} maps {l.in_channels} to {l.out_channels} channels; expected {n_class} to {n_class}"))
        elif l.name not in s.upsampling_weights:
            problems.append((Diagnosis("upsampling_too_large"), f"{l.name} is too large to check"))
        elif np.isnan(s.upsampling_weights[l.name]).all():  # the observation marks weights nothing wrote
            problems.append((Diagnosis("upsampling_not_initialised"),
                             f"{l.name} keeps the weights it was created with: call init_weights(self) at the end of "
                             f"__init__ (it sets every ConvTranspose2d to bilinear upsampling)"))
        elif not np.allclose(s.upsampling_weights[l.name], upsampling_weight(n_class, n_class, l.kernel_size[0]),
                             atol=1e-6):
            problems.append((Diagnosis("upsampling_not_bilinear"),
                             f"{l.name} is not initialised to bilinear upsampling (init_weights copies "
                             f"get_upsampling_weight(n_class, n_class, kernel_size) into it)"))
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} head", s.unregistered)
    message = "fc6, fc7, score layers and bilinear transposed convolutions are as specified"
    spare = [l.name for l in unused if l.type in ("Conv2d", "ConvTranspose2d")]
    if spare:
        message += f" (note: {', '.join(spare[:5])} {'is' if len(spare) == 1 else 'are'} registered but never used in forward)"
    return message


def _upsampling_cause(kind: str, used: list[Layer]) -> str:
    """What is wrong with the upsamplings forward uses, when their kernels and strides are not the
    assignment's (the crops assume those)."""
    got = sorted((l.kernel_size[0], l.stride[0]) for l in used if l.type == "ConvTranspose2d")
    if got == sorted(UPSAMPLINGS[kind]):
        return ""
    want = ", ".join(f"kernel {k} stride {st}" for k, st in UPSAMPLINGS[kind])
    found = ", ".join(f"kernel {k} stride {st}" for k, st in got) or "none"
    return (f"check the upsamplings: forward uses {found}, expected {want} (a transposed convolution makes "
            f"(H - 1) * stride + kernel - 2 * padding pixels of H; the crops assume these)")


def judge_output_shape(s: Structure, n_class: int = N_CLASS, sizes=OUTPUT_SIZES) -> str:
    name, cause = MODEL_CLASSES[s.kind], root_cause(s.layers, s.kind)
    if s.forward_error:  # the root cause instead of the error torch raised because of it
        if cause:
            raise CheckFailed(f"{name}.forward fails because {_first(cause, s.kind)}.", root_diagnosis(s.layers))
        raise CheckFailed(_unregistered(s.unregistered) + s.forward_error, Diagnosis("unregistered") if s.unregistered
                          else recorded(s.forward_diagnosis, Diagnosis("forward_raises")))
    problems = []
    for (h, w), shape in zip(sizes, s.output_shapes, strict=True):
        if shape != [1, n_class, h, w]:
            problems.append(f"input 1x3x{h}x{w} gave {'x'.join(map(str, shape))}, expected 1x{n_class}x{h}x{w}")
    channels = {shape[1] for shape in s.output_shapes if len(shape) == 4}
    if problems and len(channels) == 1 and channels != {n_class} and all(
            shape[:1] + shape[2:] == [1, h, w] for (h, w), shape in zip(sizes, s.output_shapes)):
        raise CheckFailed(f"{name} output shape: {channels.pop()} output channels where {n_class} were expected "
                          f"(one score per class; the height and width are right): build the score layers and "
                          f"upsamplings with n_class.", Diagnosis("n_class_channels"))
    upsampling = _upsampling_cause(s.kind, _in_use(s)[0])
    hint, diagnosis = ((_first(cause, s.kind), root_diagnosis(s.layers)) if cause else
                       (upsampling, Diagnosis("upsampling_kernels")) if upsampling else
                       (final_crop_hint(s.kind), Diagnosis("final_crop")))
    if problems:
        raise CheckFailed(f"{name} output shape: " + "; ".join(problems) + f": {hint}.", diagnosis)
    how = "" if s.forward_device == "meta" else " (measured with real tensors: forward does not run on the meta device)"
    return f"output is N x {n_class} x H x W for inputs " + ", ".join(f"{h}x{w}" for h, w in sizes) + how


# The structural judgements by the part of the item's name (fcn32s_<part>): the notebook's checks and the
# grader (autograder.judging.structural) both find them here, so a new one is a function and a row.
STRUCTURAL = {"vgg_layers": judge_vgg_layers, "head": judge_head, "output_shape": judge_output_shape}


# ----------------------------------------------------------------------------------- behaviour


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def judge_equivalence(o: Outputs, reference: dict[str, StageValues]) -> str:
    """Same activations as the reference, stage by stage, with the same (seeded) weights: catches
    wrong crop offsets, a missing ReLU, a swapped skip, dropout active in eval mode... and names the
    first stage that departs."""
    name, cause = MODEL_CLASSES[o.kind], root_cause(o.layers, o.kind)
    if (o.error or o.output is None) and cause:  # the root cause instead of the error torch raised because of it
        raise CheckFailed(f"{name} cannot be compared with the reference: {_first(cause, o.kind)}.",
                          root_diagnosis(o.layers))
    first = _unregistered(o.unregistered) + (f"{_first(cause, o.kind)}; then " if cause else "")
    # what is said first decides the diagnosis: layers PyTorch does not see, then the VGG-16 mistakes
    before = Diagnosis("unregistered") if o.unregistered else root_diagnosis(o.layers) if cause else None
    if o.error or o.output is None:
        used = [layer for layer in o.layers if layer.name in o.called]
        upsampling = _upsampling_cause(o.kind, used) if used and "ConvTranspose2d" in o.error else ""
        raise CheckFailed(first + (_missing(o.error, o.unregistered) if o.error else f"{name} produced no output.")
                          + (f" {upsampling[0].upper()}{upsampling[1:]}." if upsampling else ""),
                          before or (recorded(o.error_diagnosis, Diagnosis("forward_raises")) if o.error
                                     else Diagnosis("no_output")))
    same_output = _same(o.output, reference.get("output"))
    matched: list[str] = []
    for stage, _, _ in STAGES[o.kind]:
        got, want = o.output if stage == "output" else o.stages.get(stage), reference.get(stage)
        if got is None or want is None:
            continue
        hint = DEPARTURE_HINTS.get(stage) or _output_hint(o, matched)
        start = f"{first}{name} departs from the reference with the same weights: " + (
            f"it matches up to {matched[-1]}; " if matched else "")
        if not _same(got, want):
            if same_output:  # another route to the reference's output: what the item asks for
                differs = (f"is {_dims(got.shape)}, the reference's {_dims(want.shape)}"
                           if tuple(got.shape) != tuple(want.shape) else f"differs by {want.difference(got):.2g}")
                return (f"the same output as the reference with the same weights, by another route (its {stage} "
                        f"{differs})")
            diagnosis = before or Diagnosis("departs", stage)
            if tuple(got.shape) != tuple(want.shape):
                raise CheckFailed(f"{start}{stage} is {_dims(got.shape)}, expected {_dims(want.shape)}: {hint}.",
                                  diagnosis)
            raise CheckFailed(f"{start}{stage} differs by {want.difference(got):.2g} (relative): {hint}.", diagnosis)
        matched.append(stage)
    return f"matches the reference at every stage ({', '.join(matched)}) with the same weights"


def _same(got, want: StageValues | None) -> bool:
    """``got`` has the reference's shape and its values within the relative tolerance."""
    return got is not None and want is not None and tuple(np.shape(got)) == tuple(want.shape) \
        and want.difference(got) < RELATIVE_TOLERANCE


def _output_hint(o: Outputs, matched: list[str]) -> str:
    """What the output stage's departure shows: probabilities, or a crop of the last upsampling."""
    out = np.asarray(o.output, dtype=np.float64)
    if out.ndim == 4 and out.size and out.min() >= 0 and out.max() <= 1 and np.allclose(out.sum(axis=1), 1, atol=1e-3):
        return ("its values lie in [0, 1] and sum to 1 over the classes at every pixel: probabilities, as a "
                "softmax gives; forward must return the class scores (the loss applies its own log-softmax)")
    last = "upscore8" if o.kind == "fcn8s" else "upscore"
    crop = final_crop_hint(o.kind)
    return f"{last} matches, so what comes after it differs: {crop}" if matched and matched[-1] == last else crop


def judge_copy_params(c: CopyParams, expected: dict) -> str:
    """The copied layers hold VGG-16's weights (fc6 / fc7 reshaped). Without a function of its own
    the submission is checked with fcnkit's, which needs the layer names and shapes of the text."""
    whose = "copy_params_from_vgg16" if c.own else "fcnkit's copy_params_from_vgg16 (your model has no copy of its own)"
    if c.error:
        raise CheckFailed(c.error, recorded(c.error_diagnosis, Diagnosis("copy_raises")))
    problems: Problems = []
    biases = []
    for name, want in expected.items():
        got = c.layers.get(name)
        if got is None or got.numel != want.numel:
            problems.append((Diagnosis("copy_size", name), f"{name} is missing or has the wrong size"))
        elif not (np.array_equal(got.weight_samples, want.weight_samples)
                  and np.isclose(got.weight_sum, want.weight_sum, rtol=1e-9, atol=1e-6)):
            problems.append((Diagnosis("not_copied", name), f"{name} was not copied"
                             + (" (reshape the linear weight with .view)" if name.startswith("fc") else "")))
        elif not np.array_equal(got.bias, want.bias):
            biases.append(name)
    if biases:
        listed = ", ".join(biases) if len(biases) <= 4 else f"{', '.join(biases[:3])} ... {biases[-1]}"
        problems.append((Diagnosis("biases_not_copied"), f"weights copied but biases not: {listed} "
                         f"hold{'s' if len(biases) == 1 else ''} VGG-16's weights with other biases (copy each "
                         f"layer's .bias as well as its .weight)"))
    _fail_if(problems, whose)
    return "copies all 13 conv layers and reshapes fc6 / fc7" + ("" if c.own else " (with fcnkit's copy_params_from_vgg16)")
