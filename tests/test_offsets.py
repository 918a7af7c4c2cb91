"""The crop offsets computed from a model's layers (fcnkit.offsets): the paper's 19, 5, 9 and 31 for
the reference's layers, and other offsets when a layer is defined otherwise."""
import pytest
import torch
from torch import nn

from autograder.reference.models import FCN8s, FCN32s
from fcnkit.offsets import Grid, crop_offsets, show_offsets, trace


def on_meta(cls):
    with torch.device("meta"):  # the layers' shapes only: no memory, no initialisation cost
        return cls(n_class=12)


def test_the_reference_layers_give_the_papers_offsets():
    assert crop_offsets(on_meta(FCN32s)) == {"upscore": 19.0}
    assert crop_offsets(on_meta(FCN8s)) == {"score_pool4": 5.0, "score_pool3": 9.0, "upscore8": 31.0}
    grids = trace(on_meta(FCN8s))
    assert (grids["conv1_1"], grids["pool4"], grids["fc7"]) == (Grid(1, -99), Grid(16, -91.5), Grid(32, 12.5))


def test_a_layer_defined_otherwise_moves_the_offsets():
    model = on_meta(FCN8s)
    model.conv1_1 = nn.Conv2d(3, 64, 3, padding=99, device="meta")  # every map starts one pixel later
    assert crop_offsets(model) == {"score_pool4": 5.0, "score_pool3": 9.0, "upscore8": 30.0}
    model = on_meta(FCN32s)
    model.fc6 = nn.Conv2d(512, 4096, 7, padding=3, device="meta")  # a "same" fc6: 3 x 32 pixels less
    assert crop_offsets(model) == {"upscore": 19.0 + 96}


def test_maps_of_other_strides_do_not_line_up_and_missing_layers_are_named():
    with pytest.raises(ValueError, match="strides 16 and 8 "):
        Grid(8, 0).offset_in(Grid(16, 0))
    model = on_meta(FCN32s)
    del model.pool3
    with pytest.raises(AttributeError, match="no layer 'pool3'"):
        trace(model)


@pytest.mark.parametrize("change,said", [
    (lambda m: delattr(m, "pool3"), "no layer 'pool3'; the FCNs need VGG-16's layers under its names. "
                                    "fcn8s_vgg_layers (its check cell above) reports what to fix"),
    (lambda m: setattr(m, "upscore2", nn.ConvTranspose2d(12, 12, 4, stride=4, device="meta")),
     "maps of strides 16 and 8 do not line up (a crop cannot align maps of different strides: check the "
     "upsamplings' strides). fcn8s_head (its check cell above) reports what to fix"),
])
def test_the_derivation_on_a_model_it_cannot_follow_says_why_and_which_check(change, said, capsys):
    model = on_meta(FCN8s)
    change(model)
    show_offsets("fcn8s", lambda: model)  # never raises
    out = capsys.readouterr().out
    assert out.startswith("The crop offsets of your FCN8s cannot be derived: ") and said in out, out
    show_offsets("fcn8s", lambda: on_meta(FCN8s), grids=False)
    assert capsys.readouterr().out == ("FCN-8s's crop offsets, from your layers: "
                                       "{'score_pool4': 5.0, 'score_pool3': 9.0, 'upscore8': 31.0}\n")


def test_an_offset_between_pixels_is_said_to_line_nothing_up(capsys):
    """pool4 as a 3x3 max pool padded by 1 (a student's): pool3's map lands half a pixel off."""
    model = on_meta(FCN8s)
    model.pool4 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
    show_offsets("fcn8s", lambda: model, grids=False)
    out = capsys.readouterr().out
    offsets = crop_offsets(model)
    fractional = [name for name, offset in offsets.items() if offset != int(offset)]
    assert fractional and out.startswith(f"FCN-8s's crop offsets, from your layers: {offsets}\n")
    assert f"{', '.join(fractional)}: not a whole number of pixels, so no crop lines the maps up" in out


def test_an_unfinished_part_is_named_once_with_what_to_do(capsys):
    """As the notebook's cell calls it, on a class whose constructor is still the release's."""
    from fcnkit.checks import build_model

    class FCN8s(nn.Module):
        def __init__(self, n_class=12):
            raise NotImplementedError
    show_offsets("fcn8s", lambda: build_model("fcn8s", {"FCN8s": FCN8s}, default_init=False))
    out = capsys.readouterr().out
    assert "Finish the parts marked YOUR CODE HERE. " in out and ".." not in out, out
