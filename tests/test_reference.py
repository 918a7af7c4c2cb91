import json

import pytest
import torch

from autograder.reference.__main__ import main
from autograder.reference.models import FCN8s
from autograder.reference.train import RECIPES, _optimizer, build
from fcnkit.data import SAMPLE_ROOT
from fcnkit.train import load_checkpoint


@pytest.mark.slow
def test_train_command_end_to_end_on_cpu(tmp_path, vgg_features_file, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "fcn32s", "--init", str(vgg_features_file), "--epochs", "2",
                 "--data", str(SAMPLE_ROOT), "--limit", "2", "--max-steps", "1", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert "test pixel accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "fcn32s_metrics.json").read_text())
    assert len(metrics["val_curve"]) == 2 and metrics["test"]["mean_iou"] >= 0
    assert metrics["recipe"]["name"] == "original" and metrics["peak_gpu_memory_mb"] is None
    assert metrics["best_val_miou"] == max(e["val_miou"] for e in metrics["val_curve"])
    state, meta = load_checkpoint(out / "fcn32s.pt")
    assert meta["model_class"] == "FCN32s" and meta["scale"] == 0.5 and "upscore.weight" in state


def test_imagenet_init_copies_conv_weights(vgg_features_file):
    net = build("fcn8s", str(vgg_features_file))
    state = torch.load(vgg_features_file, weights_only=True)
    assert torch.equal(net.conv3_2.weight, state["12.weight"])


def test_improved_recipe_freezes_upsampling_and_boosts_new_layers():
    net = FCN8s()
    opt = _optimizer(net, RECIPES["improved"])
    assert not net.upscore8.weight.requires_grad
    body, head = opt.param_groups
    assert head["lr"] == 10 * body["lr"]
    assert any(p is net.score_pool3.weight for p in head["params"])
    assert all(p is not net.upscore2.weight for g in opt.param_groups for p in g["params"])


def test_scratch_init_is_not_all_zero():
    # the original course zero-initialised every conv, which left training from scratch stuck
    net = build("fcn32s", "scratch")
    assert net.conv1_1.weight.std() > 0 and net.fc7.weight.std() > 0
    assert net.eval().relu7(net.fc7(net.relu6(net.fc6(torch.randn(1, 512, 7, 7))))).abs().sum() > 0


def test_probe_recipe_trains_only_the_named_layers():
    import dataclasses
    net = FCN8s()
    opt = _optimizer(net, dataclasses.replace(RECIPES["original"], trainable=("score",)))
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in trained}
    assert names == {"score.weight", "score.bias", "score_pool4.weight", "score_pool4.bias",
                     "score_pool3.weight", "score_pool3.bias"}
