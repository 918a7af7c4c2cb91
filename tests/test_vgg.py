import urllib.error

import pytest
import torch

from fcnkit import vgg
from fcnkit.vgg import copy_params_from_vgg16, get_upsampling_weight, load_vgg16
from autograder.reference.models import FCN32s


def test_bilinear_kernel_upsamples_constant_and_linear_ramps():
    up = torch.nn.ConvTranspose2d(2, 2, 4, stride=2, bias=False)
    up.weight.data.copy_(get_upsampling_weight(2, 2, 4))
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 2, 5, 5).contiguous()
    y = up(x)[..., 1:-1, 1:-1]  # the border of a transposed conv sees fewer inputs
    assert y.shape[-1] == 2 * 5
    # interior of a linear ramp stays linear with half the slope
    diffs = y[0, 0, 3, 2:-2].diff()
    assert torch.allclose(diffs, torch.full_like(diffs, 0.5))
    w = get_upsampling_weight(3, 3, 64)
    assert w.shape == (3, 3, 64, 64)
    assert w[0, 1].abs().sum() == 0 and w[0, 0].sum() == pytest.approx(32 ** 2)


def test_load_features_only_file_is_strict_and_warns(vgg_features_file):
    with pytest.warns(UserWarning, match="conv layers only"):
        model = load_vgg16(vgg_features_file)
    state = torch.load(vgg_features_file, weights_only=True)
    for key, value in state.items():
        assert torch.equal(model.features.state_dict()[key], value)


def test_imagenet_uses_env_file(vgg_features_file, monkeypatch):
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(vgg_features_file))
    with pytest.warns(UserWarning):
        model = load_vgg16("imagenet")
    assert torch.equal(model.features[0].bias, torch.load(vgg_features_file, weights_only=True)["0.bias"])


def test_imagenet_offline_error_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.delenv(vgg.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(vgg.WeightsUnavailable, match=vgg.WEIGHTS_ENV):
        load_vgg16("imagenet")
    with pytest.raises(vgg.WeightsUnavailable, match="does not exist"):
        load_vgg16(tmp_path / "missing.pth")


def test_full_state_dict_file(tmp_path):
    from torchvision.models import vgg16
    src = vgg16()
    path = tmp_path / "vgg16.pth"
    torch.save(src.state_dict(), path)
    loaded = load_vgg16(path)
    assert torch.equal(loaded.classifier[3].weight, src.classifier[3].weight)


def test_copy_params_reshapes_fc_layers():
    from torchvision.models import vgg16
    src = vgg16()
    fcn = FCN32s(n_class=12)
    copy_params_from_vgg16(fcn, src)
    assert torch.equal(fcn.conv5_3.weight, src.features[28].weight)
    assert torch.equal(fcn.fc6.weight.flatten(1), src.classifier[0].weight)
    assert torch.equal(fcn.fc7.bias, src.classifier[3].bias)
    # fc6 applied to a 7x7 map equals VGG's first linear layer on the flattened map
    x = torch.randn(1, 512, 7, 7)
    assert torch.allclose(fcn.fc6(x).flatten(), src.classifier[0](x.flatten(1)).flatten(), atol=1e-4)
