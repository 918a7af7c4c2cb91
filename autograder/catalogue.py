"""The catalogue of known-buggy submissions: the reference solution with one realistic mistake each,
made from the reference source so they never drift from it.

    python -m autograder.catalogue DIR     # write reference.py, every mutant and variant into DIR

The tests check that each mutant loses points on the check named for its bug; the grading CLI grades
a few of them (``EXAMPLES``) when given no path.
"""
from __future__ import annotations

import sys
from pathlib import Path

REFERENCE = (Path(__file__).parent / "reference" / "models.py").read_text()
EXAMPLES = ("reference", "fcn8s_no_ceil_mode", "fcn32s_centre_crop", "dropout_active_in_eval")

CENTRE_CROP_32 = """dy, dx = (h.size(2) - x.size(2)) // 2, (h.size(3) - x.size(3)) // 2
        return h[:, :, dy:dy + x.size(2), dx:dx + x.size(3)].contiguous()"""
CENTRE_CROP_8 = """dy, dx = (h.size(2) - x.size(2)) // 2, (h.size(3) - x.size(3)) // 2
        return h[:, :, dy:dy + x.size(2), dx:dx + x.size(3)].contiguous()"""
OWN_COPY = '''
    def copy_params_from_vgg16(self, vgg16):
        convs = [m for m in vgg16.features if isinstance(m, nn.Conv2d)]
        names = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                 "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
        for name, src in zip(names, convs):
            getattr(self, name).weight.data.copy_(src.weight.data)
            getattr(self, name).bias.data.copy_(src.bias.data)
        self.fc6.weight.data.copy_(vgg16.classifier[0].weight.data.view(self.fc6.weight.size()))
        self.fc6.bias.data.copy_(vgg16.classifier[0].bias.data)
{fc7}
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        h = self.score('''
FC7_COPY = """        self.fc7.weight.data.copy_(vgg16.classifier[3].weight.data.view(self.fc7.weight.size()))
        self.fc7.bias.data.copy_(vgg16.classifier[3].bias.data)
"""

def without_biases(code: str) -> str:
    """A copy that copies each layer's weight and forgets its bias."""
    return "".join(line for line in code.splitlines(keepends=True) if ".bias.data.copy_(" not in line)

# name: (what the student got wrong, the check that must lose points, [(old, new), ...])
MUTANTS = {
    "no_padding_100": ("conv1_1 pads by 1 instead of 100", "fcn32s_vgg_layers",
                       [("nn.Conv2d(3, 64, 3, padding=100)", "nn.Conv2d(3, 64, 3, padding=1)")]),
    "fcn8s_no_ceil_mode": ("ceil_mode forgotten for pool4, in FCN-8s only", "fcn8s_vgg_layers",
                           [("        vgg16_layers(self)\n        self.score = nn.Conv2d(4096, n_class, 1)\n        self.score_pool4",
                             "        vgg16_layers(self)\n        self.pool4 = nn.MaxPool2d(2, stride=2)\n        self.score = nn.Conv2d(4096, n_class, 1)\n        self.score_pool4")]),
    "upscore_with_bias": ("the 32x upsampling has a bias", "fcn32s_head",
                          [("64, stride=32, bias=False)", "64, stride=32)")]),
    "upscore_random_init": ("transposed convolutions keep their random init", "fcn8s_head",
                            [("m.weight.data.copy_(get_upsampling_weight(m.in_channels, m.out_channels, m.kernel_size[0]))",
                              "nn.init.normal_(m.weight, std=0.01)")]),
    "fc6_kernel_3": ("fc6 is a 3x3 convolution", "fcn32s_head",
                     [("fcn.fc6 = nn.Conv2d(512, 4096, 7)", "fcn.fc6 = nn.Conv2d(512, 4096, 3)")]),
    "score_pool4_3x3": ("score_pool4 is a 3x3 convolution", "fcn8s_head",
                        [("self.score_pool4 = nn.Conv2d(512, n_class, 1)", "self.score_pool4 = nn.Conv2d(512, n_class, 3, padding=1)")]),
    "upscore8_stride_4": ("the final upsampling has stride 4", "fcn8s_output_shape",
                          [("n_class, 16, stride=8, bias=False)", "n_class, 16, stride=4, bias=False)")]),
    "fcn32s_crop_0": ("FCN-32s crops at offset 0", "fcn32s_equivalence",
                      [("h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)]", "h[:, :, :x.size(2), :x.size(3)]")]),
    "fcn32s_centre_crop": ("FCN-32s crops the centre", "fcn32s_equivalence",
                           [("return h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)].contiguous()", CENTRE_CROP_32)]),
    "fcn8s_centre_crop": ("FCN-8s crops the centre at the end", "fcn8s_equivalence",
                          [("return h[:, :, 31:31 + x.size(2), 31:31 + x.size(3)].contiguous()", CENTRE_CROP_8)]),
    "fcn8s_skip_offsets_swapped": ("the pool4 and pool3 crop offsets are swapped", "fcn8s_equivalence",
                                   [("[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]",
                                     "[:, :, 9:9 + upscore2.size(2), 9:9 + upscore2.size(3)]"),
                                    ("[:, :, 9:9 + upscore_pool4.size(2), 9:9 + upscore_pool4.size(3)]",
                                     "[:, :, 5:5 + upscore_pool4.size(2), 5:5 + upscore_pool4.size(3)]")]),
    "fcn8s_missing_pool3_skip": ("the pool3 skip is never added", "fcn8s_equivalence",
                                 [("h = self.upscore8(upscore_pool4 + score_pool3)", "h = self.upscore8(upscore_pool4)")]),
    "missing_relu_fc7": ("fc7 has no ReLU", "fcn32s_equivalence",
                         [("fc7 = fcn.drop7(fcn.relu7(fcn.fc7(h)))", "fc7 = fcn.drop7(fcn.fc7(h))")]),
    "dropout_active_in_eval": ("dropout through F.dropout, active in eval mode", "fcn8s_equivalence",
                               [("h = fcn.drop6(fcn.relu6(fcn.fc6(h)))",
                                 "h = nn.functional.dropout(fcn.relu6(fcn.fc6(h)), 0.5)")]),
    "skip_added_before_upsampling": ("score_pool4 added at 1/32 (cropped to fit) instead of 1/16", "fcn8s_equivalence",
                                     [("upscore2 = self.upscore2(self.score(features[\"fc7\"]))  # 1/16",
                                       "h = self.score(features[\"fc7\"])\n        upscore2 = self.upscore2(h + self.score_pool4(features[\"pool4\"])[:, :, 5:5 + h.size(2), 5:5 + h.size(3)])")]),
    "fcn8s_score_pool4_crop_4": ("score_pool4 cropped at offset 4 instead of 5", "fcn8s_equivalence",
                                 [("[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]",
                                   "[:, :, 4:4 + upscore2.size(2), 4:4 + upscore2.size(3)]")]),
    "fcn8s_score_pool4_crop_9": ("score_pool4 cropped at offset 9 instead of 5", "fcn8s_equivalence",
                                 [("[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]",
                                   "[:, :, 9:9 + upscore2.size(2), 9:9 + upscore2.size(3)]")]),
    "upsamplings_in_plain_list": ("FCN-8s keeps its upsamplings in a plain Python list (unregistered)", "fcn8s_head",
                                  [("        self.upscore2 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)\n"
                                    "        self.upscore_pool4 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)\n"
                                    "        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)\n",
                                    "        self.upscores = [nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False),\n"
                                    "                         nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False),\n"
                                    "                         nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)]\n"),
                                   ("self.upscore2(", "self.upscores[0]("), ("self.upscore_pool4(", "self.upscores[1]("),
                                   ("self.upscore8(", "self.upscores[2](")]),
    "no_ceil_mode_shared": ("ceil_mode forgotten for every pool, in the shared vgg16_layers", "fcn32s_vgg_layers",
                            [("nn.MaxPool2d(2, stride=2, ceil_mode=True)", "nn.MaxPool2d(2, stride=2)")]),
    "fcn32s_upscore_kernel_32": ("the 32x upsampling has kernel 32 instead of 64", "fcn32s_output_shape",
                                 [("n_class, 64, stride=32, bias=False)", "n_class, 32, stride=32, bias=False)")]),
    "init_weights_not_called": ("the constructors never call init_weights", "fcn32s_head",
                                [("        init_weights(self)\n", "")]),
    "copy_params_forgets_fc7": ("own copy_params_from_vgg16 forgets fc7", "fcn32s_copy_params",
                                [("\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        ### BEGIN SOLUTION\n        h = self.score(",
                                  OWN_COPY.format(fc7=""))]),
    "softmax_output": ("FCN-32s's forward returns softmax probabilities instead of scores", "fcn32s_equivalence",
                       [("return h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)].contiguous()",
                         "return torch.softmax(h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)], dim=1)")]),
    "copy_params_forgets_biases": ("own copy_params_from_vgg16 copies the weights but not the biases",
                                   "fcn32s_copy_params",
                                   [("\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        ### BEGIN SOLUTION\n        h = self.score(",
                                     without_biases(OWN_COPY.format(fc7=FC7_COPY)))]),
    "fcn32s_21_classes": ("FCN-32s hard-codes PASCAL VOC's 21 classes", "fcn32s_output_shape",
                          [("        vgg16_layers(self)\n        self.score = nn.Conv2d(4096, n_class, 1)\n        self.upscore ",
                            "        n_class = 21  # PASCAL VOC\n        vgg16_layers(self)\n"
                            "        self.score = nn.Conv2d(4096, n_class, 1)\n        self.upscore ")]),
    "fcn8s_skip_crop_start_only": ("score_pool4 cropped from offset 5 to its end, not to upscore2's size",
                                   "fcn8s_output_shape",
                                   [("score_pool4[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]",
                                     "score_pool4[:, :, 5:, 5:]")]),
    "no_dropout": ("fc6 and fc7 have no dropout after their ReLU", "fcn32s_dropout",
                   [("h = fcn.drop6(fcn.relu6(fcn.fc6(h)))", "h = fcn.relu6(fcn.fc6(h))"),
                    ("fc7 = fcn.drop7(fcn.relu7(fcn.fc7(h)))", "fc7 = fcn.relu7(fcn.fc7(h))")]),
}

# Correct solutions written differently: each must get full marks.
VARIANTS = {
    "renamed_extra_layers": [("self.score_pool4", "self.scorePool4"), ("self.score_pool3", "self.score_pool_3"),
                             ("self.upscore2", "self.transpose1"), ("self.upscore_pool4", "self.transpose2"),
                             ("self.upscore8", "self.transpose3"), ("self.upscore ", "self.up32 "),
                             ("self.upscore(", "self.up32(")],
    "own_copy_params": [("\n    def forward(self, x: torch.Tensor) -> torch.Tensor:\n        ### BEGIN SOLUTION\n        h = self.score(",
                         OWN_COPY.format(fc7=FC7_COPY))],
    # FCN-32s's upsampling pads by 16, so the final crop starts at 3: another route to the same output
    "upscore_padded": [("self.upscore = nn.ConvTranspose2d(n_class, n_class, 64, stride=32, bias=False)",
                        "self.upscore = nn.ConvTranspose2d(n_class, n_class, 64, stride=32, padding=16, bias=False)"),
                       ("return h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)]",
                        "return h[:, :, 3:3 + x.size(2), 3:3 + x.size(3)]")],
    # FCN-8s keeps a leftover copy of FCN-32s's 32x upsampling that forward never calls
    "unused_extra_layer": [("        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)\n",
                            "        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)\n"
                            "        self.upscore = nn.ConvTranspose2d(n_class, n_class, 64, stride=32, bias=False)\n")],
}


def mutate(replacements) -> str:
    source = REFERENCE
    for old, new in replacements:
        if old not in source:
            raise ValueError(f"catalogue out of date: {old!r} is not in the reference any more")
        source = source.replace(old, new)
    return source


def sources() -> dict[str, str]:
    """``{name: source}`` of the reference, every mutant and every variant."""
    files = {"reference": REFERENCE}
    files.update({name: f'"""Mutant: {why}."""\n' + mutate(r) for name, (why, _, r) in MUTANTS.items()})
    files.update({f"variant_{name}": mutate(r) for name, r in VARIANTS.items()})
    return files


def write_submissions(folder: str | Path, names=None) -> list[Path]:
    """Write ``<name>.py`` for the given names (default: all) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    everything = sources()
    paths = []
    for name in names or everything:
        paths.append(folder / f"{name}.py")
        paths[-1].write_text(everything[name])
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m autograder.catalogue DIR")
    print(f"wrote {len(write_submissions(sys.argv[1]))} submissions to {sys.argv[1]}")
