import pickle

import cv2
import numpy as np
import pytest

from tests.helpers import CLASSES, make_coco
from trashseg.augment import CopyPasteDataset, build_transform, cutmix, paste_objects
from trashseg.config import AugmentConfig, CopyPasteConfig
from trashseg.data.coco import load_split
from trashseg.data.dataset import SegmentationDataset
from trashseg.data.masks import MaskCache
from trashseg.data.stats import class_stats
from trashseg.errors import TrashsegError

PAPER, METAL, BATTERY = 1, 2, 3
COLOUR = np.array([200, 100, 50], np.uint8)


def _disc(size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), size // 2, 1, -1)
    return mask.astype(bool)


def _donor(size: int = 17, cls: int = BATTERY) -> tuple[np.ndarray, np.ndarray, int]:
    """A uniformly coloured crop (so bilinear scaling keeps the colour) with a round object mask."""
    return np.broadcast_to(COLOUR, (size, size, 3)).copy(), _disc(size), cls


def test_pasted_label_is_exactly_where_pasted_pixels_are_and_replaces_what_was_below():
    image = np.full((64, 64, 3), 10, np.uint8)
    mask = np.full((64, 64), PAPER, np.uint8)
    for seed in range(5):
        out_image, out_mask = paste_objects(
            image, mask, [_donor(), _donor()], np.random.default_rng(seed), scale=(0.75, 1.5)
        )
        pasted = (out_image == COLOUR).all(-1)
        assert pasted.any()
        assert np.array_equal(pasted, out_mask == BATTERY)
        assert np.array_equal(out_mask == PAPER, ~pasted)  # occluded Paper is gone, not kept beneath
    assert (mask == PAPER).all() and (image == 10).all()  # inputs untouched


def test_object_larger_than_target_is_clipped_at_the_border():
    image, mask = np.zeros((12, 20, 3), np.uint8), np.zeros((12, 20), np.uint8)
    for seed in range(20):
        _, out_mask = paste_objects(image, mask, [_donor(41)], np.random.default_rng(seed), scale=(0.5, 1.5))
        assert out_mask.shape == (12, 20) and (out_mask == BATTERY).any()


def test_scale_changes_pasted_area_by_its_square():
    image, mask = np.zeros((400, 400, 3), np.uint8), np.zeros((400, 400), np.uint8)

    def area(factor: float) -> int:  # largest of a few placements = the unclipped object
        return max(
            int(
                (
                    paste_objects(image, mask, [_donor(21)], np.random.default_rng(s), (factor, factor))[1] == BATTERY
                ).sum()
            )
            for s in range(8)
        )

    assert area(2.0) / area(1.0) == pytest.approx(4.0, rel=0.1)


PALETTE = np.array([[90, 90, 90], [220, 40, 40], [40, 220, 40], [40, 40, 220]], np.uint8)


@pytest.mark.parametrize("other_size", [(48, 64), (96, 80)])
def test_cutmix_keeps_image_and_mask_aligned_in_the_box(other_size):
    mask = np.zeros((48, 64), np.uint8)
    mask[5:40, 5:30] = PAPER
    other_mask = np.full(other_size, METAL, np.uint8)
    other_mask[: other_size[0] // 2] = BATTERY
    for seed in range(5):
        out_image, out_mask = cutmix(PALETTE[mask], mask, PALETTE[other_mask], other_mask, np.random.default_rng(seed))
        assert out_image.shape == (48, 64, 3) and out_mask.shape == (48, 64)
        box = out_mask != mask
        assert box.any()
        ys, xs = np.nonzero(box)
        assert box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].mean() > 0.5  # one rectangle, not scattered
        matches = (out_image == PALETTE[out_mask]).all(-1)
        assert matches.mean() >= 0.98  # a resized other may blend colours along its own edge only


def _tiny_dataset(tmp_path, transform=None) -> SegmentationDataset:
    """Three images: a big Paper, a medium Metal and a small Battery (the rarest by pixels)."""
    images = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 48} for i in (1, 2, 3)]

    def rect(aid, image_id, cat, x0, y0, x1, y1):
        return {
            "id": aid,
            "image_id": image_id,
            "category_id": cat,
            "area": float((x1 - x0) * (y1 - y0)),
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        }

    anns = [
        rect(1, 1, PAPER, 0, 0, 30, 20),
        rect(2, 2, METAL, 5, 5, 25, 20),
        rect(3, 3, BATTERY, 10, 10, 18, 18),
        rect(4, 3, BATTERY, 30, 20, 38, 28),
    ]
    split = load_split(make_coco(tmp_path, annotations=anns, images=images), tmp_path, CLASSES)
    return SegmentationDataset(split, MaskCache(split, tmp_path / "masks"), transform=transform)


def test_pixel_shares_sum_to_one_and_rank_classes(tmp_path):
    ds = _tiny_dataset(tmp_path)
    shares = class_stats(ds.split, ds.cache).shares
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] > shares[PAPER] > shares[METAL] > shares[BATTERY] > 0


def test_rarest_class_is_chosen_by_default(tmp_path):
    ds = CopyPasteDataset(_tiny_dataset(tmp_path), CopyPasteConfig(prob=1.0, rarest=1), CLASSES)
    assert ds.classes == [BATTERY]
    assert ds.donors[BATTERY][:, 0].tolist() == [2, 2]  # two Battery objects, both in the third image
    two = CopyPasteDataset(_tiny_dataset(tmp_path), CopyPasteConfig(rarest=2), CLASSES)
    assert two.classes == [BATTERY, METAL]


def test_unknown_class_name_is_a_named_error(tmp_path):
    with pytest.raises(TrashsegError, match=r"Glass.*valid names.*Battery"):
        CopyPasteDataset(_tiny_dataset(tmp_path), CopyPasteConfig(classes=["Battery", "Glass"]), CLASSES)


def test_pasting_increases_the_rare_class_and_keeps_the_sample_format(tmp_path):
    base = _tiny_dataset(tmp_path)
    ds = CopyPasteDataset(base, CopyPasteConfig(prob=1.0, rarest=1), CLASSES, seed=3)
    before = sum(int((base[i]["mask"] == BATTERY).sum()) for i in range(len(base)))
    after = sum(int((ds[i]["mask"] == BATTERY).sum()) for i in range(len(ds)))
    assert after > before
    sample, reference = ds[0], base[0]
    assert sample.keys() == reference.keys() and sample["file_name"] == reference["file_name"]
    assert sample["image"].dtype == reference["image"].dtype and sample["image"].shape == reference["image"].shape


def test_configured_classes_and_transform_are_applied(tmp_path):
    transform = build_transform(AugmentConfig(preset="none", image_size=32), train=False)
    ds = CopyPasteDataset(_tiny_dataset(tmp_path, transform), CopyPasteConfig(prob=1.0, classes=["Metal"]), CLASSES)
    assert ds.classes == [METAL]
    masks = [ds[0]["mask"] for _ in range(5)]
    assert all(tuple(m.shape) == (32, 32) for m in masks) and any((m == METAL).any() for m in masks)


def test_cutmix_only_dataset_mixes_in_other_images(tmp_path):
    ds = CopyPasteDataset(_tiny_dataset(tmp_path), CopyPasteConfig(prob=0.0), CLASSES, cutmix_prob=1.0)
    labels = set()
    for _ in range(10):
        labels |= set(ds[0]["mask"].unique().tolist())
    assert labels - {0, PAPER}  # Metal or Battery came in from another image
    assert ds._donors is None  # no mask scan when copy-paste is off


def test_pickles_with_its_donor_index(tmp_path):
    ds = CopyPasteDataset(_tiny_dataset(tmp_path), CopyPasteConfig(prob=1.0, rarest=2), CLASSES)
    donors = ds.donors
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._donors is not None and clone.classes == ds.classes
    assert all(np.array_equal(clone._donors[c], donors[c]) for c in donors)
    assert tuple(clone[0]["mask"].shape) == (32, 48)


def test_seeded_item_is_reproducible(tmp_path):
    transform = build_transform(AugmentConfig(preset="seed", image_size=32), train=True)
    ds = CopyPasteDataset(_tiny_dataset(tmp_path, transform), CopyPasteConfig(prob=1.0), CLASSES, cutmix_prob=0.5)
    a, b, c = ds[(1, 123)], ds[(1, 123)], ds[(1, 124)]
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    assert not (np.array_equal(a["image"], c["image"]) and np.array_equal(a["mask"], c["mask"]))
