"""Build the assignment notebook (nbgrader source) and its student release.

    python notebooks/build.py            # write notebooks/source/fcn_segmentation/fcn_segmentation.ipynb
    python notebooks/build.py --release  # ... and regenerate notebooks/release/ with nbgrader
    python notebooks/build.py --check    # fail if either is out of date (CI)

The model code in the solution cells is not written here: it is cut from
autograder/reference/models.py, the one source of the reference solution.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ASSIGNMENT = "fcn_segmentation"
SOURCE = HERE / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
RELEASE = HERE / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
sys.path.insert(0, str(REPO))

from autograder.rubric import ITEMS  # noqa: E402

REFERENCE = (REPO / "autograder" / "reference" / "models.py").read_text()


def reference_block(name: str) -> str:
    """The code between ``# BEGIN name`` and ``# END name`` in the reference models."""
    start = REFERENCE.index(f"# BEGIN {name}\n") + len(f"# BEGIN {name}\n")
    return REFERENCE[start:REFERENCE.index(f"# END {name}\n")].strip("\n")


def _meta(**nbgrader) -> dict:
    return {"nbgrader": {"schema_version": 3, **nbgrader}}


def md(text: str, cell_id: str | None = None):
    cell = nbformat.v4.new_markdown_cell(text.strip())
    if cell_id:  # locked: students can't edit the instructions of a graded part
        cell.metadata = _meta(grade=False, solution=False, locked=True, grade_id=cell_id)
    return cell


def code(source: str):
    return nbformat.v4.new_code_cell(source.strip())


def solution(source: str, cell_id: str):
    cell = code(source)
    cell.metadata = _meta(grade=False, solution=True, locked=False, grade_id=cell_id)
    return cell


def test(name: str, visible: str, **check_args):
    """An autograded test cell for one rubric item: quick visible checks and fcnkit's student-side
    check (what the grader's messages say), then the grader's full check, hidden from students (it
    needs the grader, which students never install)."""
    item = ITEMS[name]
    args = "".join(f", {k}={v}" for k, v in check_args.items())
    body = (f"# {item.title} ({item.points} points)\n{visible.strip()}\n".replace("\n\n", "\n")
            + f'check("{name}", globals(){args})\n'
            + "### BEGIN HIDDEN TESTS\nfrom autograder.checks import check_in_process\n"
            + f'check_in_process("{name}", globals(){args})\n### END HIDDEN TESTS')
    cell = code(body)
    cell.metadata = _meta(grade=True, solution=False, locked=True, points=item.points, grade_id=name)
    return cell


def output_shape_test(model: str):
    return test(f"{model}_output_shape", f"""
out = build_model("{model}", globals())(torch.zeros(1, 3, 64, 80))
assert out.shape == (1, N_CLASS, 64, 80), f"output {{tuple(out.shape)}} should be (1, {{N_CLASS}}, 64, 80)"
""")


def equivalence_test(model: str):
    return test(f"{model}_equivalence", f"""
model, x = build_model("{model}", globals()), torch.randn(1, 3, 50, 60)
with torch.no_grad():
    assert torch.equal(model(x), model(x)), "in eval mode the output must not change between calls"
""")


def miou_test(model: str):
    """The trained weights saved in outputs/<model>.pt, evaluated on the test split (visible)."""
    return test(f"{model}_miou", "# the saved weights are evaluated on the test split",
                checkpoint=f'OUTPUTS / "{model}.pt"', images="TEST_IMAGES", labels="TEST_LABELS", device="DEVICE")


def answer(question_id: str, points: int, key: str):
    cell = md(f"**Your answer:**\n\n### BEGIN SOLUTION\n{key.strip()}\n### END SOLUTION")
    cell.metadata = _meta(grade=True, solution=True, locked=False, points=points, grade_id=question_id)
    return cell


SETUP = r'''
# Setup. Works on Colab and on a lab machine; nothing to change here.
#   FCNKIT_DATA            the CMP Facade folder (base/ and extended/); fetched into data/cmp_facade if unset
#   FCNKIT_VGG16_WEIGHTS   a local VGG-16 state_dict, when torchvision's ImageNet weights can't be downloaded
#   FCNKIT_SCALE           image scale (default 0.5: half resolution, fits a 12 GB GPU)
#   FCNKIT_SMOKE=1         a few steps on the bundled sample (to check the notebook runs, not to learn)
%matplotlib inline
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

if importlib.util.find_spec("fcnkit") is None:  # e.g. on Colab
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "fcnkit"], check=True)

import torch
from torch import nn

from fcnkit import data, viz
from fcnkit.checks import build_model, check  # the grader's messages, without its hidden checks
from fcnkit.train import fit, evaluate, resolve_device, save_checkpoint, seed_everything
from fcnkit.vgg import WeightsUnavailable, copy_params_from_vgg16, get_upsampling_weight, load_vgg16

GRADING = bool(os.environ.get("NBGRADER_EXECUTION"))  # set by `nbgrader autograde`: no training then
SMOKE = os.environ.get("FCNKIT_SMOKE") == "1"
MODE = "grading" if GRADING else "smoke" if SMOKE else "full"
DEVICE = resolve_device("auto")
IMAGE_SCALE = float(os.environ.get("FCNKIT_SCALE", 0.5))
N_CLASS = data.N_CLASS
OUTPUTS = Path("outputs")  # the grader reads outputs/fcn32s.pt, outputs/fcn8s.pt and outputs/metrics.json
OUTPUTS.mkdir(exist_ok=True)

if SMOKE:
    DATA_ROOT = data.SAMPLE_ROOT
else:
    DATA_ROOT = Path(os.environ.get(data.DATA_ENV, "data/cmp_facade"))
    if not DATA_ROOT.is_dir() and not GRADING:
        subprocess.run([sys.executable, "-m", "dataset_tools", "fetch", "--dest", str(DATA_ROOT)], check=True)

# Training recipe: the original assignment's (Adam 1e-4, batch 1, 25 epochs, no augmentation).
RECIPE = {"epochs": 25, "lr": 1e-4, "batch_size": 1, "max_steps": None, "limit": None}
if SMOKE:
    RECIPE = {"epochs": 1, "lr": 1e-4, "batch_size": 2, "max_steps": 2, "limit": 4}
seed_everything(0)
print(f"mode: {MODE}, device: {DEVICE}, data: {DATA_ROOT}, image scale: {IMAGE_SCALE}")
'''

DATA = r'''
splits = data.cmp_splits(DATA_ROOT)
print({name: len(images) for name, images in splits.items()})
LOADERS = data.make_loaders(splits, scale=IMAGE_SCALE, batch_size=RECIPE["batch_size"], limit=RECIPE["limit"])
viz.show_samples(LOADERS["train"].dataset, n=4)
'''

TRAIN_SCRATCH = r'''
# FCN-32s from scratch (random weights everywhere). Skipped when the notebook is graded.
RESULTS = {}
if MODE != "grading":
    seed_everything(0)
    fcn32s_scratch = FCN32s(n_class=N_CLASS)
    run = fit(fcn32s_scratch, LOADERS["train"], LOADERS["val"], n_class=N_CLASS, epochs=RECIPE["epochs"],
              lr=RECIPE["lr"], max_steps=RECIPE["max_steps"], test_loader=LOADERS["test"], device=DEVICE)
    RESULTS["fcn32s_scratch"] = run.test
    print(f"FCN-32s from scratch: test pixel accuracy {run.test['pixel_acc']:.3f}, mIoU {run.test['mean_iou']:.3f}")
    del fcn32s_scratch
'''

VGG = r'''
def imagenet_vgg16():
    """ImageNet VGG-16 (torchvision's, or FCNKIT_VGG16_WEIGHTS); a smoke run may go without."""
    try:
        return load_vgg16(os.environ.get("FCNKIT_VGG16_WEIGHTS", "imagenet"))
    except WeightsUnavailable as err:
        if not SMOKE:
            raise
        print(f"smoke run without ImageNet weights: {err}")
        import torchvision
        return torchvision.models.vgg16()


def train_from_imagenet(model, name):
    """Copy ImageNet VGG-16 into ``model``, train it with the recipe, save the best weights to
    outputs/<name>.pt, plot its training curves and return the FitResult."""
    copy_params_from_vgg16(model, imagenet_vgg16())
    seed_everything(0)
    run = fit(model, LOADERS["train"], LOADERS["val"], n_class=N_CLASS, epochs=RECIPE["epochs"],
              lr=RECIPE["lr"], max_steps=RECIPE["max_steps"], test_loader=LOADERS["test"], device=DEVICE)
    save_checkpoint(OUTPUTS / f"{name}.pt", run.model, n_class=N_CLASS, scale=IMAGE_SCALE,
                    epoch=run.best_epoch, val_miou=run.best_val_miou)
    RESULTS[name] = run.test
    print(f"{name}: test pixel accuracy {run.test['pixel_acc']:.3f}, mIoU {run.test['mean_iou']:.3f}")
    display(viz.plot_history(run.history))
    return run
'''

TRAIN_32 = r'''
if MODE != "grading":
    run32 = train_from_imagenet(FCN32s(n_class=N_CLASS), "fcn32s")
'''

TRAIN_8 = r'''
if MODE != "grading":
    run8 = train_from_imagenet(FCN8s(n_class=N_CLASS), "fcn8s")
'''

TEST_SPLIT = r'''
# The test split, as the grader sees it (the saved weights are evaluated on it).
TEST_IMAGES, TEST_LABELS = data.eval_split(DATA_ROOT, "test", IMAGE_SCALE)
'''

VISUALISE = r'''
if MODE != "grading":
    display(viz.show_predictions(run8.model, LOADERS["test"].dataset, indices=[0, 1, 2], device=DEVICE))
    for name in ("fcn32s", "fcn8s"):
        display(viz.plot_class_iou(RESULTS[name]["per_class_iou"], title=f"{name}: test IoU per class"))
    (OUTPUTS / "metrics.json").write_text(json.dumps(
        {"mode": MODE, "image_scale": IMAGE_SCALE, "device": str(DEVICE), "recipe": RECIPE, "test": RESULTS},
        indent=2))
    for name, scores in RESULTS.items():
        print(f"{name:15s} pixel accuracy {scores['pixel_acc']:.3f}   mIoU {scores['mean_iou']:.3f}")
'''


def cells() -> list:
    return [
        md("""
# Semantic segmentation with Fully Convolutional Networks

In this assignment you build the two networks of *Fully Convolutional Networks for Semantic Segmentation*
(Long, Shelhamer and Darrell, CVPR 2015), FCN-32s and FCN-8s, on top of VGG-16, and train them to label every
pixel of facade photos from the CMP Facade Database.

Points: FCN-32s 30, FCN-8s 40 (checked automatically), two written questions 30 (graded by hand).
Your work goes in the cells marked `YOUR CODE HERE` / `YOUR ANSWER HERE`; please don't rename the classes
or the layers the text asks for: the grader looks for them.

The data loading, metrics, training loop, VGG-16 weights and plots come from the course package `fcnkit`.
"""),
        code(SETUP),
        md("""
## 1. Semantic segmentation and how we measure it

A classifier gives one label to a whole image. A *semantic segmentation* network gives one label to each
pixel: for a facade, which pixels are window, door, balcony, wall... Its output for an image of size H x W is
a score map of size C x H x W (C classes); the predicted label of a pixel is its highest-scoring class.

Every metric we use comes from the *confusion matrix* M, where M[i, j] counts the pixels of true class i
predicted as class j:

- **pixel accuracy**: the share of pixels labelled correctly, trace(M) / sum(M). Easy to read, but dominated
  by the big classes (facade, background).
- **IoU of class c**: true positives / (true positives + false positives + false negatives), i.e. the overlap
  of predicted and true regions divided by their union.
- **mean IoU** (mIoU): the average IoU over the classes that occur, so small classes such as sills count as
  much as the facade. This is the headline number.

The usual way to fill M is `np.bincount(n * gt + pred, minlength=n * n)`, but only over the pixels whose
truth is a real class: `(gt >= 0) & (gt < n)`. Padding pixels carry an "ignore" label (255 here); without that
mask they would be counted in some unrelated cell of M. `fcnkit.metrics.ConfusionMatrix` does this for you.
"""),
        md("""
## 2. The CMP Facade Database

606 rectified facade images, each with a label image of 12 classes (background, facade, window, door,
cornice, sill, balcony, blind, deco, molding, pillar, shop). We use the split of the original assignment:
the sorted *base* images, then the sorted *extended* ones; the first 500 train, the next 30 validate, the
last 76 test. Images are normalised with the ImageNet mean and standard deviation, as VGG-16 expects.
"""),
        code(DATA),
        md("""
## 3. FCN-32s

FCN-32s takes VGG-16, an ImageNet classifier, and makes it fully convolutional:

- the 13 convolutions `conv1_1` ... `conv5_3` (3x3, padding 1), each followed by a ReLU (`relu1_1` ...), and the
  five max-pools `pool1` ... `pool5` (2x2, stride 2, `ceil_mode=True`);
- `conv1_1` pads by **100** pixels instead of 1, so that even a small image still leaves a feature map after
  the 32x downsampling and the 7x7 `fc6`;
- the fully connected layers become convolutions: `fc6` is a 7x7 convolution 512 -> 4096 and `fc7` a 1x1
  convolution 4096 -> 4096, each followed by a ReLU and dropout (`drop6`, `drop7`, as `nn.Dropout2d` modules);
- `score`, a 1x1 convolution 4096 -> n_class, scores every position;
- `upscore`, a transposed convolution (kernel 64, stride 32, **no bias**) initialised to bilinear
  upsampling with `get_upsampling_weight`, brings the scores back to (more than) the input size;
- the output is cropped to the input size starting at offset **19**, which undoes the padding of 100.

Write the VGG-16 part first: `vgg16_layers` adds the layers to a model, `vgg16_forward` runs them. Both FCNs
use them. `init_weights` is given: He initialisation, zero score layers, bilinear upsampling. (Zeros
everywhere, a common shortcut, would leave every ReLU dead and a network trained from scratch would never
learn.)
""", "fcn32s_text"),
        solution("import torch\nfrom torch import nn\n\nfrom fcnkit.vgg import get_upsampling_weight\n\n\n"
                 + reference_block("vgg16_layers"), "vgg16_layers"),
        solution(reference_block("FCN32s"), "fcn32s_solution"),
        md("The checks below give the grader's verdicts on your model's structure (the grader also compares "
           "its outputs with the reference's, in hidden checks). Run them as you go.",
           "fcn32s_tests_text"),
        test("fcn32s_vgg_layers", """
model = build_model("fcn32s", globals())
assert model.conv1_1.padding == (100, 100), "conv1_1 must pad by 100"
assert model.pool1.ceil_mode, "the pools need ceil_mode=True"
"""),
        test("fcn32s_head", """
model = build_model("fcn32s", globals())
assert model.fc6.kernel_size == (7, 7), "fc6 is a 7x7 convolution"
ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
assert [(m.kernel_size, m.bias) for m in ups] == [((64, 64), None)], "one upsampling: kernel 64, no bias"
"""),
        output_shape_test("fcn32s"),
        equivalence_test("fcn32s"),
        test("fcn32s_copy_params", """
model = build_model("fcn32s", globals())
assert model.fc6.weight[0].numel() == 512 * 7 * 7, "fc6 must hold VGG's first linear layer (512 x 7 x 7 inputs)"
"""),
        md("""
### Training FCN-32s, from scratch and from ImageNet

First from random weights. With 500 images and 134 million parameters, expect little.
"""),
        code(TRAIN_SCRATCH),
        md("""
Now start from VGG-16 trained on ImageNet: `copy_params_from_vgg16` copies its 13 convolutions, and its
first two fully connected layers reshaped into `fc6` and `fc7`. The best weights (by validation mIoU) are
saved to `outputs/fcn32s.pt` for the grader.
"""),
        code(VGG),
        code(TRAIN_32),
        code(TEST_SPLIT),
        miou_test("fcn32s"),
        md("""
## 4. FCN-8s

The 32x upsampling of FCN-32s blurs everything thin: sills, window frames, pillars. FCN-8s recovers detail
by adding predictions from earlier, finer layers (*skip connections*):

1. `score_pool4`, a 1x1 convolution 512 -> n_class on `pool4` (1/16 of the input), and `score_pool3`, a 1x1
   convolution 256 -> n_class on `pool3` (1/8);
2. the fc7 scores are upsampled 2x (`upscore2`: transposed convolution, kernel 4, stride 2, no bias) and
   added to `score_pool4` cropped at offset **5**;
3. that sum is upsampled 2x again (`upscore_pool4`, kernel 4, stride 2) and added to `score_pool3` cropped
   at offset **9**;
4. the result is upsampled 8x (`upscore8`, kernel 16, stride 8) and cropped to the input at offset **31**.

All transposed convolutions start as bilinear upsampling (`init_weights` does it).
""", "fcn8s_text"),
        solution(reference_block("FCN8s"), "fcn8s_solution"),
        test("fcn8s_vgg_layers", """
model = build_model("fcn8s", globals())
assert model.conv1_1.padding == (100, 100), "conv1_1 must pad by 100"
assert all(getattr(model, f"pool{i}").ceil_mode for i in range(1, 6)), "the pools need ceil_mode=True"
"""),
        test("fcn8s_head", """
model = build_model("fcn8s", globals())
ups = sorted(m.kernel_size[0] for m in model.modules() if isinstance(m, nn.ConvTranspose2d))
assert ups == [4, 4, 16], f"expected transposed convolutions with kernels 4, 4 and 16, found {ups}"
"""),
        output_shape_test("fcn8s"),
        equivalence_test("fcn8s"),
        md("### Training FCN-8s from ImageNet VGG-16 (saved to `outputs/fcn8s.pt`)"),
        code(TRAIN_8),
        miou_test("fcn8s"),
        md("""
## 5. Looking at the results

Predictions of FCN-8s on test images, the IoU of every class for both models, and a summary saved to
`outputs/metrics.json`.
"""),
        code(VISUALISE),
        md("""
## 6. Questions

**Question 1 (15 points).** FCN-32s trained from scratch and FCN-32s initialised from ImageNet VGG-16 use the
same architecture, data and training. Compare their test mIoU and explain the difference. What does the
ImageNet initialisation bring, and why does it matter so much for this dataset?
""", "question1_text"),
        answer("question1", 15, """
Expected points (instructor key): the pretrained model is far better (original course: 0.06 vs 0.48 mIoU).
VGG-16 has ~134 M parameters and the training set 500 images: from scratch it cannot learn general visual
features (edges, textures, parts) and mostly predicts the dominant classes (facade, background), so per-class
IoU collapses. ImageNet features transfer: they are generic, the network only adapts them and learns the
score layers. Good answers mention overfitting / sample size, dead or slow early layers, and that pixel
accuracy hides the gap (it is dominated by large classes) while mIoU shows it.
"""),
        md("""
**Question 2 (15 points).** FCN-8s and FCN-32s share the VGG-16 backbone. Which classes gain most from the
skip connections of FCN-8s, and why? Use the per-class IoU plots above.
""", "question2_text"),
        answer("question2", 15, """
Expected points (instructor key): FCN-8s improves mIoU (original course: 0.50 vs 0.48, more with a better
recipe). Gains concentrate on small or thin structures: sill, window, blind, molding, pillar, cornice; big
regions (facade, background, shop) change little. Reason: FCN-32s predicts on a 1/32 grid and upsamples 32x,
so boundaries and objects a few pixels wide are lost; pool4 (1/16) and pool3 (1/8) features keep finer spatial
detail, and fusing their scores sharpens boundaries. Strong answers relate it to receptive field vs.
resolution, and note the offsets/crops that align the maps.
"""),
    ]


def build_source(path: Path = SOURCE) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep the committed notebook's diff readable
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def generate_release(course: Path) -> Path:
    """Run ``nbgrader generate_assignment`` on a scratch copy of the course; return the release folder."""
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(SOURCE.parent, course / "source" / ASSIGNMENT)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--force",
                    "--CourseDirectory.root=" + str(course), "--log-level=WARN"], check=True, cwd=course)
    return course / "release" / ASSIGNMENT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", action="store_true", help="also regenerate the student release")
    parser.add_argument("--check", action="store_true", help="fail if the committed notebooks are out of date")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.check:
            build_source(tmp / "source.ipynb")
            stale = [] if filecmp.cmp(tmp / "source.ipynb", SOURCE, shallow=False) else [SOURCE]
            release = generate_release(tmp / "course")
            stale += [] if filecmp.cmp(release / RELEASE.name, RELEASE, shallow=False) else [RELEASE]
            for path in stale:
                print(f"{path.relative_to(REPO)} is out of date: run python notebooks/build.py --release")
            return 1 if stale else 0
        build_source()
        print(f"wrote {SOURCE.relative_to(REPO)}")
        if args.release:
            release = generate_release(tmp / "course")
            if RELEASE.parent.exists():
                shutil.rmtree(RELEASE.parent)
            shutil.copytree(release, RELEASE.parent)
            print(f"wrote {RELEASE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
