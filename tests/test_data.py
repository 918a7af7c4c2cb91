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


def positional_pair(h: int = 40, w: int = 60):
    """An image whose channels hold each pixel's column and row, and a label computed from them:
    after any flip and crop, a label that still matches its pixels proves they moved together."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([cols.float(), rows.float(), torch.zeros(h, w)]), (cols + 3 * rows) % 12


def test_a_forced_flip_mirrors_image_and_label_together(monkeypatch):
    import random
    image, label = positional_pair()
    monkeypatch.setattr(random, "random", lambda: 0.0)  # below 0.5: flip
    x, y = data.Augment(flip=True, scale_range=(1.0, 1.0))(image, label)
    assert torch.equal(x, image.flip(-1)) and torch.equal(y, label.flip(-1)) and not torch.equal(y, label)
    assert x[0, 0, 0] == image.shape[-1] - 1  # the first column came from the last one
    monkeypatch.setattr(random, "random", lambda: 0.9)  # not flipped
    x, y = data.Augment(flip=True, scale_range=(1.0, 1.0))(image, label)
    assert torch.equal(x, image) and torch.equal(y, label)


def test_augmentation_keeps_image_and_label_aligned():
    import random
    image, label = positional_pair()
    aug = data.Augment(flip=True, scale_range=(1.0, 1.0), crop=32)
    flipped = 0
    for seed in range(12):
        random.seed(seed)
        x, y = aug(image, label)
        assert x.shape == (3, 32, 32) and y.shape == (32, 32)
        assert torch.equal(y, (x[0].round().long() + 3 * x[1].round().long()) % 12), seed
        flipped += bool(x[0, 0, 0] > x[0, 0, -1])
    assert 0 < flipped < 12  # both branches were taken


def test_a_crop_larger_than_the_image_pads_the_label_with_ignore(cmp_root):
    plain = CMPFacade([cmp_splits(cmp_root)["train"][0]], scale=0.25)[0]
    x, y = data.random_crop(plain[0], plain[1], 1000)
    assert x.shape[-2:] == y.shape == (1000, 1000)
    h, w = plain[1].shape
    assert (y[h:] == data.IGNORE_INDEX).all() and (y[:, w:] == data.IGNORE_INDEX).all()
    assert (x[:, h:] == 0).all() and torch.equal(y[:h, :w], plain[1])


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
