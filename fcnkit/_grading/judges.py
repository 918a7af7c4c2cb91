"""The structural verdicts, with the messages the grader gives.

Each ``judge_*`` function reads an observation record (:mod:`fcnkit._grading.records`) and returns a short
success message or raises :class:`CheckFailed` with what was found: its diagnosis (a code and the
student's values), in the words of :mod:`fcnkit._grading.diagnoses`' tables. The grader calls them on
what its sandboxed child observed, with the reference's activations for the seed it drew for the run;
the notebook's test cells and ``python -m fcnkit check`` call them on an observation made in the
student's own process, with the reference's activations for :data:`PUBLIC_SEED` shipped in fcnkit
(:mod:`fcnkit.reference`). numpy only: the grader's own process never imports torch.

When an earlier mistake makes a later check fail (conv1_1 without its padding of 100, pools without
ceil_mode, layers PyTorch cannot see), the later check names that cause first, not the error torch
raised because of it.
"""
from __future__ import annotations

import numpy as np

from .diagnoses import DEPARTURE_HINTS, HINTS, RECORDED, Diagnosis, words
from .records import CopyParams, Layer, Outputs, Structure
from .stages import StageValues
from ..spec import MODEL_CLASSES, N_CLASS, STAGES, UPSAMPLINGS, VGG_CHANNELS, VGG_CONV_NAMES, upsampling_weight

OUTPUT_SIZES = ((17, 24), (96, 131), (250, 161))  # small, odd, even, non-square, large
EQUIVALENCE_SIZE = (31, 47)  # the smallest inputs cost least; every catalogue mutant is still caught
PUBLIC_SEED = 0  # the seed of the reference activations fcnkit ships; the grader draws a fresh one per run
RELATIVE_TOLERANCE = 1e-4
FINAL_CROP = {"fcn32s": 19, "fcn8s": 31}
UPSAMPLING_ROLES = ("upscore", "upscore8", "upscore2 and upscore_pool4")  # role_count's subjects that upsample


class CheckFailed(AssertionError):
    """A check did not pass; the message tells the student what to fix, the diagnosis what was found
    (:mod:`fcnkit._grading.diagnoses`: data the class overview groups by). Given a diagnosis alone, the
    message is its sentence."""

    def __init__(self, message: str | Diagnosis, diagnosis: Diagnosis | None = None):
        if isinstance(message, Diagnosis):
            message, diagnosis = message.sentence, message
        super().__init__(message)
        self.diagnosis = diagnosis


def recorded(diagnosis: list[str], fallback: Diagnosis) -> Diagnosis:
    """The diagnosis an observation recorded with its error (``[code, subject]``, a code an observer makes),
    else ``fallback``."""
    return Diagnosis.from_json(diagnosis, RECORDED) or fallback


def _hides_layers(diagnoses: list[Diagnosis]) -> bool:
    """What a layer PyTorch does not see looks like: asked for by name, or no upsampling found."""
    return any(d.code in ("missing_layer", "missing_in_forward")
               or (d.code == "upsampling_kernels" and not d.values.get("found")) for d in diagnoses)


def _fail_if(problems: list[Diagnosis], what: str, unregistered=()) -> None:
    """Fail with every problem's sentence; the diagnosis is the first one's (the layers PyTorch does not see
    first, when there are any: they are named first)."""
    if problems:
        hidden = _unregistered(unregistered)
        hint = "" if hidden or not _hides_layers(problems) else words("?register")
        raise CheckFailed(f"{what}: {_said(hidden)}" + "; ".join(d.sentence for d in problems) + f"{hint}.",
                          hidden or problems[0])


def _said(diagnosis: Diagnosis | None, then: str = "") -> str:
    """A cause named first: its sentence, then ``then``; "" for none."""
    return diagnosis.sentence + then if diagnosis else ""


def _unregistered(names) -> Diagnosis | None:
    """The cause to name first when some modules are kept where PyTorch does not see them."""
    if not names:
        return None
    return Diagnosis("unregistered", values={"names": list(names[:4]), "more": len(names) > 4, "count": len(names)})


def root_diagnosis(layers: list[Layer], kind: str) -> Diagnosis | None:
    """The VGG-16 mistakes that make the later checks fail (forward raises on small inputs, every size
    after pool1 is off), as one diagnosis; None when there are none."""
    by_name = {layer.name: layer for layer in layers}
    causes = []
    conv = by_name.get("conv1_1")
    if conv is not None and conv.type == "Conv2d" and conv.padding and conv.padding != [100, 100]:
        causes.append(Diagnosis("conv1_1_padding", values={"padding": conv.padding[0]}))
    floor = [name for name in (f"pool{i}" for i in range(1, 6))
             if name in by_name and by_name[name].type == "MaxPool2d" and not by_name[name].ceil_mode]
    if floor:
        causes.append(Diagnosis("pools_floor", ", ".join(floor), {"pools": floor}))
    if not causes:
        return None
    return Diagnosis("root_cause", " and ".join(c.label for c in causes), {"causes": causes, "kind": kind})


def _shape(layer) -> str:
    if layer.type in ("Conv2d", "ConvTranspose2d"):
        return (f"{layer.type}({layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size[0]}, "
                f"stride={layer.stride[0]}, padding={layer.padding[0]}, bias={layer.bias})")
    return layer.type


def _expect(problems: list[Diagnosis], layer, name, kind, in_ch, out_ch, k, stride=1, padding=None,
            bias=True) -> None:
    if layer is None:
        problems.append(Diagnosis("missing_layer", name))
        return
    ok = (layer.type == kind and (layer.in_channels, layer.out_channels) == (in_ch, out_ch)
          and layer.kernel_size == [k, k] and layer.stride == [stride, stride]
          and (padding is None or layer.padding == [padding, padding]) and layer.bias == bias)
    if not ok:
        problems.append(Diagnosis("wrong_layer", name, {
            "found": _shape(layer), "type": kind, "in_channels": in_ch, "out_channels": out_ch, "kernel_size": k,
            "stride": stride, "padding": padding, "bias": bias}))


# ----------------------------------------------------------------------------------- structure
def _one(pair: list[int]):
    """``[3, 3]`` as ``3``, as nn.MaxPool2d(3) is written; ``[3, 2]`` as ``(3, 2)``."""
    return pair[0] if len(set(pair)) == 1 else tuple(pair)


def judge_vgg_layers(s: Structure, n_class: int = N_CLASS) -> str:
    layers = {layer.name: layer for layer in s.layers}
    problems: list[Diagnosis] = []
    for name, (in_ch, out_ch) in zip(VGG_CONV_NAMES, VGG_CHANNELS):
        _expect(problems, layers.get(name), name, "Conv2d", in_ch, out_ch, 3, padding=100 if name == "conv1_1" else 1)
    floor = []
    for i in range(1, 6):
        pool = layers.get(f"pool{i}")
        if pool is None or pool.type != "MaxPool2d":
            problems.append(Diagnosis("not_max_pool", f"pool{i}"))
        elif not (pool.kernel_size == [2, 2] and pool.stride == [2, 2] and pool.padding in ([], [0, 0])):
            k, st, pad = (_one(v) for v in (pool.kernel_size, pool.stride, pool.padding or [0, 0]))
            problems.append(Diagnosis("wrong_pool", f"pool{i}", {"kernel_size": k, "stride": st, "padding": pad}))
        elif not pool.ceil_mode:
            floor.append(f"pool{i}")
    if floor:
        problems.append(Diagnosis("ceil_mode", ", ".join(floor), {"pools": floor}))
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} VGG-16 layers", s.unregistered)
    return "all 13 conv layers and 5 pools match VGG-16 (conv1_1 padding 100, ceil-mode pools)"


def _in_use(s: Structure) -> tuple[list, list]:
    """The layers forward uses, and the ones registered but never called. When forward could not
    run, every registered layer counts as used."""
    if s.forward_error or not any(layer.called for layer in s.layers):
        return s.layers, []
    return [l for l in s.layers if l.called], [l for l in s.layers if not l.called]


def _kernels(pairs) -> list[str]:
    return [f"kernel {k} stride {st}" for k, st in pairs]


def judge_head(s: Structure, n_class: int = N_CLASS) -> str:
    layers = {layer.name: layer for layer in s.layers}
    used, unused = _in_use(s)
    problems: list[Diagnosis] = []
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
            problems.append(Diagnosis("score_layer", role, {"in_channels": in_ch, "n_class": n_class,
                                                             "found": len(found), "others": [] if found else others}))
    ups = [l for l in used if l.type == "ConvTranspose2d"]
    got = sorted((l.kernel_size[0], l.stride[0]) for l in ups)
    if got != sorted(UPSAMPLINGS[s.kind]):
        problems.append(Diagnosis("upsampling_kernels", values={"expected": _kernels(UPSAMPLINGS[s.kind]),
                                                                "found": _kernels(got)}))
    for l in ups:
        if l.bias:
            problems.append(Diagnosis("upsampling_bias", values={"layer": l.name}))
        if (l.in_channels, l.out_channels) != (n_class, n_class):
            problems.append(Diagnosis("upsampling_channels", values={
                "layer": l.name, "in_channels": l.in_channels, "out_channels": l.out_channels, "n_class": n_class}))
        elif l.name not in s.upsampling_weights:
            problems.append(Diagnosis("upsampling_too_large", values={"layer": l.name}))
        elif np.isnan(s.upsampling_weights[l.name]).all():  # the observation marks weights nothing wrote
            problems.append(Diagnosis("upsampling_not_initialised", values={"layer": l.name}))
        elif not np.allclose(s.upsampling_weights[l.name], upsampling_weight(n_class, n_class, l.kernel_size[0]),
                             atol=1e-6):
            problems.append(Diagnosis("upsampling_not_bilinear", values={"layer": l.name}))
    _fail_if(problems, f"{MODEL_CLASSES[s.kind]} head", s.unregistered)
    message = "fc6, fc7, score layers and bilinear transposed convolutions are as specified"
    spare = [l.name for l in unused if l.type in ("Conv2d", "ConvTranspose2d")]
    if spare:
        message += f" (note: {', '.join(spare[:5])} {'is' if len(spare) == 1 else 'are'} registered but never used in forward)"
    return message


def _upsampling_cause(kind: str, used: list[Layer]) -> Diagnosis | None:
    """The upsamplings forward uses, when their kernels and strides are not the assignment's (the crops
    assume those); None when they are."""
    got = sorted((l.kernel_size[0], l.stride[0]) for l in used if l.type == "ConvTranspose2d")
    if got == sorted(UPSAMPLINGS[kind]):
        return None
    return Diagnosis("upsampling_kernels", values={"expected": _kernels(UPSAMPLINGS[kind]), "found": _kernels(got)})


def judge_output_shape(s: Structure, n_class: int = N_CLASS, sizes=OUTPUT_SIZES) -> str:
    name, root = MODEL_CLASSES[s.kind], root_diagnosis(s.layers, s.kind)
    if s.forward_error:  # the root cause instead of the error torch raised because of it
        if root:
            raise CheckFailed(f"{name}.forward fails because {root.sentence}.", root)
        hidden = _unregistered(s.unregistered)
        raise CheckFailed(_said(hidden) + s.forward_error,
                          hidden or recorded(s.forward_diagnosis, Diagnosis("forward_raises")))
    problems = [words("?size", height=h, width=w, got="x".join(map(str, shape)), n_class=n_class)
                for (h, w), shape in zip(sizes, s.output_shapes, strict=True) if shape != [1, n_class, h, w]]
    channels = {shape[1] for shape in s.output_shapes if len(shape) == 4}
    if problems and len(channels) == 1 and channels != {n_class} and all(
            shape[:1] + shape[2:] == [1, h, w] for (h, w), shape in zip(sizes, s.output_shapes)):
        raise CheckFailed(Diagnosis("n_class_channels", values={"model": name, "channels": channels.pop(),
                                                                "n_class": n_class}))
    if problems:
        cause = root or _upsampling_cause(s.kind, _in_use(s)[0]) or final_crop(s.kind)
        raise CheckFailed(f"{name} output shape: " + "; ".join(problems)
                          + f": {cause.sentence if cause is root else cause.hint}.", cause)
    how = "" if s.forward_device == "meta" else " (measured with real tensors: forward does not run on the meta device)"
    return f"output is N x {n_class} x H x W for inputs " + ", ".join(f"{h}x{w}" for h, w in sizes) + how


def final_crop(kind: str, after: str = "") -> Diagnosis:
    """The final crop as the cause (``after``: the last upsampling, when the activations match up to it)."""
    return Diagnosis("final_crop", values={"offset": FINAL_CROP[kind], "after": after})


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
    name, root = MODEL_CLASSES[o.kind], root_diagnosis(o.layers, o.kind)
    if (o.error or o.output is None) and root:  # the root cause instead of the error torch raised because of it
        raise CheckFailed(f"{name} cannot be compared with the reference: {root.sentence}.", root)
    # what is said first decides the diagnosis: layers PyTorch does not see, then the VGG-16 mistakes
    hidden = _unregistered(o.unregistered)
    first, before = _said(hidden) + _said(root, "; then "), hidden or root
    if o.error or o.output is None:
        found = recorded(o.error_diagnosis, Diagnosis("forward_raises")) if o.error else Diagnosis(
            "no_output", values={"model": name})
        used = [layer for layer in o.layers if layer.name in o.called]
        upsampling = _upsampling_cause(o.kind, used) if used and found.code == "role_count" \
            and found.subject in UPSAMPLING_ROLES else None
        text = o.error if o.error else found.sentence
        if not hidden and _hides_layers([found]):
            text = f"{text[:-1]}{words('?register')}." if text.endswith(".") else text + words("?register")
        hint = upsampling.hint if upsampling else ""
        raise CheckFailed(first + text + (f" {hint[0].upper()}{hint[1:]}." if hint else ""), before or found)
    same_output = _same(o.output, reference.get("output"))
    matched: list[str] = []
    for stage, _, _ in STAGES[o.kind]:
        got, want = o.output if stage == "output" else o.stages.get(stage), reference.get(stage)
        if got is None or want is None:
            continue
        if not _same(got, want):
            shaped = tuple(got.shape) != tuple(want.shape)
            if same_output:  # another route to the reference's output: what the item asks for
                differs = (f"is {_dims(got.shape)}, the reference's {_dims(want.shape)}"
                           if shaped else f"differs by {want.difference(got):.2g}")
                return (f"the same output as the reference with the same weights, by another route (its {stage} "
                        f"{differs})")
            departs = Diagnosis("departs", stage, {
                "model": name, "matched": matched[-1] if matched else None,
                "shape": _dims(got.shape) if shaped else None, "expected": _dims(want.shape),
                "difference": None if shaped else want.difference(got),
                "hint": DEPARTURE_HINTS.get(stage) or _output_hint(o, matched)})
            raise CheckFailed(first + departs.sentence, before or departs)
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
        return words("probabilities", HINTS)
    last = "upscore8" if o.kind == "fcn8s" else "upscore"
    return final_crop(o.kind, last if matched and matched[-1] == last else "").hint


def judge_copy_params(c: CopyParams, expected: dict) -> str:
    """The copied layers hold VGG-16's weights (fc6 / fc7 reshaped). Without a function of its own
    the submission is checked with fcnkit's, which needs the layer names and shapes of the text."""
    whose = "copy_params_from_vgg16" if c.own else "fcnkit's copy_params_from_vgg16 (your model has no copy of its own)"
    if c.error:
        raise CheckFailed(c.error, recorded(c.error_diagnosis, Diagnosis("copy_raises")))
    problems: list[Diagnosis] = []
    biases = []
    for name, want in expected.items():
        got = c.layers.get(name)
        if got is None or got.numel != want.numel:
            problems.append(Diagnosis("copy_size", name))
        elif not (np.array_equal(got.weight_samples, want.weight_samples)
                  and np.isclose(got.weight_sum, want.weight_sum, rtol=1e-9, atol=1e-6)):
            problems.append(Diagnosis("not_copied", name, {"reshape": name.startswith("fc")}))
        elif not np.array_equal(got.bias, want.bias):
            biases.append(name)
    if biases:
        problems.append(Diagnosis("biases_not_copied", values={
            "layers": biases if len(biases) <= 4 else biases[:3], "last": biases[-1] if len(biases) > 4 else None,
            "count": len(biases)}))
    _fail_if(problems, whose)
    return "copies all 13 conv layers and reshapes fc6 / fc7" + ("" if c.own else " (with fcnkit's copy_params_from_vgg16)")
