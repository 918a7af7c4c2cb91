import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_label_with_value
from fcnkit import data
from fcnkit.data import CMPFacade, DataError, cmp_splits, pad_collate, revert_input


def test_original_split_sizes_and_ids(cmp_root):
    splits = cmp_splits(cmp_root)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [500, 30, 76]
    assert splits["train"][0].stem == "cmp_b0001"
    assert splits["train"][377].stem == "cmp_b0378"
    assert splits["train"][-1].stem == "cmp_x0122"
    assert (splits["val"][0].stem, splits["val"][-1].stem) == ("cmp_x0123", "cmp_x0152")
    assert (splits["test"][0].stem, splits["test"][-1].stem) == ("cmp_x0153", "cmp_x0228")


def test_root_from_env(cmp_root, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(cmp_root))
    assert len(cmp_splits()["test"]) == 76
    monkeypatch.delenv(data.DATA_ENV)
    with pytest.raises(DataError, match="FCNKIT_DATA"):
        cmp_splits()


def test_items_labels_and_revert(cmp_root):
    splits = cmp_splits(cmp_root)
    ds = CMPFacade(splits["test"][:3], scale=0.25)
    for i in range(len(ds)):
        x, y = ds[i]
        raw = np.asarray(Image.open(ds.images[i]))
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == y.shape
        assert y.min() >= 0 and y.max() <= 11
        assert abs(y.shape[0] - raw.shape[0] * 0.25) <= 1
    full = CMPFacade(splits["test"][:1])
    x, y = full[0]
    raw = np.asarray(Image.open(full.images[0]).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(revert_input(x), raw, atol=1e-5)
    label = np.asarray(Image.open(full.images[0].with_suffix(".png")))
    np.testing.assert_array_equal(y.numpy(), label.astype(np.int64) - 1)


def test_augmentation_crops_and_flips_consistently(cmp_root):
    jpg = cmp_splits(cmp_root)["train"][0]
    torch.manual_seed(0)
    plain = CMPFacade([jpg], scale=0.25)[0]
    aug = data.Augment(flip=True, scale_range=(1.0, 1.0), crop=64)
    import random
    random.seed(1)
    for _ in range(5):
        x, y = aug(*plain)
        assert x.shape == (3, 64, 64) and y.shape == (64, 64)
    # a forced flip mirrors image and label together
    x, y = data.Augment(flip=False, scale_range=(1.0, 1.0))(*plain)
    assert torch.equal(y, plain[1])
    # crop larger than the image pads labels with the ignore index
    x, y = data.random_crop(plain[0], plain[1], 1000)
    assert (y == data.IGNORE_INDEX).any() and x.shape[-1] == 1000


def test_pad_collate_handles_different_sizes():
    a = (torch.ones(3, 4, 5), torch.zeros(4, 5, dtype=torch.long))
    b = (torch.ones(3, 6, 3), torch.ones(6, 3, dtype=torch.long))
    images, labels = pad_collate([a, b])
    assert images.shape == (2, 3, 6, 5) and labels.shape == (2, 6, 5)
    assert (labels[0, 4:] == data.IGNORE_INDEX).all() and (labels[1, :, 3:] == data.IGNORE_INDEX).all()
    assert images[0, :, 4:].abs().sum() == 0 and labels[1, :6, :3].eq(1).all()


@pytest.fixture
def pair_copy(cmp_root, tmp_path):
    src = cmp_root / "base" / "cmp_b0001.jpg"
    shutil.copy(src, tmp_path)
    shutil.copy(src.with_suffix(".png"), tmp_path)
    return tmp_path / "cmp_b0001.jpg"


def test_error_missing_root(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        cmp_splits(tmp_path / "nowhere")
    with pytest.raises(DataError, match="base"):
        cmp_splits(tmp_path)


def test_error_jpg_without_png(pair_copy):
    pair_copy.with_suffix(".png").unlink()
    with pytest.raises(DataError, match="cmp_b0001.png"):
        CMPFacade([pair_copy])


def test_error_size_mismatch(pair_copy):
    png = pair_copy.with_suffix(".png")
    Image.open(png).resize((10, 10), Image.NEAREST).save(png)
    with pytest.raises(DataError, match="cmp_b0001.png is 10x10"):
        CMPFacade([pair_copy])[0]


def test_error_label_out_of_range(pair_copy):
    png = pair_copy.with_suffix(".png")
    write_label_with_value(png, png, 13)
    with pytest.raises(DataError, match="label value 13"):
        CMPFacade([pair_copy])[0]


def test_error_unreadable_image(pair_copy):
    raw = pair_copy.read_bytes()
    pair_copy.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match="cmp_b0001.jpg cannot be read"):
        CMPFacade([pair_copy])[0]


def test_palette_matches_label_files(cmp_root):
    palette = Image.open(cmp_root / "base" / "cmp_b0001.png").getpalette()
    file_colours = [tuple(palette[3 * i:3 * i + 3]) for i in range(1, 13)]
    assert list(data.PALETTE) == file_colours
    assert len(data.CLASS_NAMES) == 12
    names = (cmp_root / "base" / "label_names.txt").read_text().split()
    assert list(data.CLASS_NAMES) == names[1::3]
