import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fcnkit.data import CMPFacade, Augment, cmp_splits, pad_collate
from fcnkit.train import NonFiniteLoss, evaluate, fit, load_checkpoint, save_checkpoint, seed_everything


def tiny_model(n_class=12):
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, n_class, 1))


@pytest.fixture(scope="module")
def loaders(cmp_root):
    splits = cmp_splits(cmp_root)
    seed_everything(0)
    train = CMPFacade(splits["train"][:6], scale=0.125, augment=Augment(crop=48))
    val = CMPFacade(splits["val"][:3], scale=0.125)
    return (DataLoader(train, batch_size=3, shuffle=True, collate_fn=pad_collate),
            DataLoader(val, batch_size=2, collate_fn=pad_collate))


def test_loss_goes_down_and_best_model_is_returned(loaders):
    train, val = loaders
    seed_everything(0)
    result = fit(tiny_model(), train, val, n_class=12, epochs=6, lr=1e-2, device="cpu", progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0] * 0.8
    vals = [h["val_miou"] for h in result.history]
    assert result.best_val_miou == max(vals)
    assert result.best_epoch == vals.index(max(vals)) + 1
    again = evaluate(result.model, val, 12, "cpu")
    assert again["mean_iou"] == pytest.approx(result.best_val_miou)


def test_test_split_is_evaluated_at_the_end(loaders):
    train, val = loaders
    result = fit(tiny_model(), train, val, n_class=12, epochs=1, max_steps=1, test_loader=val,
                 device="cpu", progress=False)
    assert result.test["mean_iou"] == pytest.approx(result.best_val_miou)


def test_nan_loss_raises_clear_error(loaders):
    train, val = loaders
    model = tiny_model()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match="learning rate"):
        fit(model, train, val, n_class=12, epochs=1, device="cpu", progress=False)


def test_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "m.pt", model, n_class=12, epoch=3, val_miou=0.5)
    other = tiny_model()
    state, meta = load_checkpoint(path, other)
    assert meta == {"model_class": "Sequential", "n_class": 12, "epoch": 3, "val_miou": 0.5}
    assert torch.equal(other[0].weight, model[0].weight)
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert load_checkpoint(tmp_path / "bare.pt")[1] == {}
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "bad.pt", model, when=object())
    json.dumps(meta)
