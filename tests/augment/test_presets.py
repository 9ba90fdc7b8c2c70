import albumentations as A
import cv2
import numpy as np
import pytest

from trashseg.augment import PRESETS, build_transform
from trashseg.config import AugmentConfig

S, IGNORE = 64, 255
# background grey, then one saturated colour per class: recognisable after colour jitter too
PALETTE = np.array([[90, 90, 90], [220, 40, 40], [40, 220, 40], [40, 40, 220]], np.uint8)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Non-square image whose colour encodes its class; large rectangles so interpolation only touches edges."""
    mask = np.zeros((96, 128), np.uint8)
    mask[8:50, 6:60] = 1
    mask[55:92, 20:70] = 2
    mask[10:80, 75:120] = 3
    return PALETTE[mask], mask


def _classify(image: np.ndarray) -> np.ndarray:
    """Class from colour: grey = background, else the dominant channel."""
    image = image.astype(int)
    grey = image.max(-1) - image.min(-1) < 40
    return np.where(grey, 0, 1 + image.argmax(-1))


def _assert_aligned(image: np.ndarray, mask: np.ndarray) -> None:
    kernel = np.ones((7, 7), np.uint8)
    interior = cv2.erode(mask, kernel) == cv2.dilate(mask, kernel)  # ≥3 px away from any label change
    labelled = interior & (mask != IGNORE)
    assert labelled.mean() > 0.3
    assert (_classify(image)[labelled] == mask[labelled]).mean() >= 0.98
    assert set(np.unique(mask)) <= {0, 1, 2, 3, IGNORE}  # nearest interpolation: no invented labels


def _seed_transforms() -> list[A.BasicTransform]:
    """Each transform of the "seed" preset alone (OneOf expanded), forced on."""
    flat = []
    for t in PRESETS["seed"]((S, S), IGNORE):
        flat += list(t.transforms) if isinstance(t, A.OneOf) else [t]
    for t in flat:
        t.p = 1.0
    return flat


@pytest.mark.parametrize("transform", _seed_transforms(), ids=lambda t: type(t).__name__)
def test_each_seed_transform_keeps_image_and_mask_aligned(transform):
    image, mask = _scene()
    pipeline = A.Compose([transform], seed=0)
    for _ in range(3):
        out = pipeline(image=image, mask=mask)
        if isinstance(transform, A.ImageOnlyTransform):  # colour, blur, compression: labels untouched
            assert np.array_equal(out["mask"], mask)
        else:
            _assert_aligned(out["image"], out["mask"])


@pytest.mark.parametrize("preset", ["seed", "seed_photometric"])
def test_whole_seed_pipeline_keeps_alignment_and_size(preset):
    image, mask = _scene()
    pipeline = build_transform(AugmentConfig(preset=preset, image_size=S), train=True)
    pipeline.set_random_seed(1)
    for _ in range(10):
        out = pipeline(image=image, mask=mask)
        assert out["image"].shape == (S, S, 3) and out["mask"].shape == (S, S)
        _assert_aligned(out["image"], out["mask"])


def test_rotation_border_is_black_and_ignored():
    image, mask = _scene()
    rotate = next(t for t in _seed_transforms() if isinstance(t, A.Rotate))
    pipeline = A.Compose([rotate], seed=0)
    border = 0
    for _ in range(3):
        out = pipeline(image=image, mask=mask)
        outside = (out["image"] == 0).all(-1)  # no palette colour is black
        border += outside.sum()
        assert (out["mask"][outside] == IGNORE).all()
        ignored = cv2.erode((out["mask"] == IGNORE).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert (out["image"][ignored] == 0).all()
    assert border > 0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_train_output_is_square_of_image_size(preset):
    image, mask = _scene()
    out = build_transform(AugmentConfig(preset=preset, image_size=S), train=True)(image=image, mask=mask)
    assert out["image"].shape == (S, S, 3) and out["mask"].shape == (S, S)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_validation_transform_is_exact_size_and_deterministic(preset):
    image, mask = _scene()
    cfg = AugmentConfig(preset=preset, image_size=S)
    first = build_transform(cfg, train=False)(image=image, mask=mask)
    second = build_transform(cfg, train=False)(image=image, mask=mask)
    assert first["image"].shape == (S, S, 3) and first["mask"].shape == (S, S)
    assert np.array_equal(first["image"], second["image"]) and np.array_equal(first["mask"], second["mask"])
    _assert_aligned(first["image"], first["mask"])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_height_and_width_sizes_keep_a_wide_frame_wide(preset):
    """[H, W] sizes (mmseg's crop_size): training crops and validation resizes come out at exactly that shape."""
    image, mask = _scene()
    cfg = AugmentConfig(preset=preset, image_size=[48, 80], crop_size=[32, 48])
    for train, shape in ((True, (32, 48)), (False, (48, 80))):
        out = build_transform(cfg, train=train)(image=image, mask=mask)
        assert out["image"].shape == (*shape, 3) and out["mask"].shape == shape


def test_a_crop_side_longer_than_the_image_is_cut_to_it():
    cfg = AugmentConfig(preset="none", image_size=[48, 80], crop_size=64)
    out = build_transform(cfg, train=True)(image=np.zeros((90, 160, 3), np.uint8), mask=np.zeros((90, 160), np.uint8))
    assert out["image"].shape == (48, 64, 3)


def test_crop_size_gives_crops_at_the_full_size_scale():
    from trashseg.augment import build_transform
    from trashseg.config import AugmentConfig

    cfg = AugmentConfig(preset="light", image_size=64, crop_size=32)
    image = np.zeros((128, 96, 3), np.uint8)
    mask = np.zeros((128, 96), np.uint8)
    out = build_transform(cfg, train=True)(image=image, mask=mask)
    assert out["image"].shape == (32, 32, 3) and out["mask"].shape == (32, 32)
    assert build_transform(cfg, train=False)(image=image, mask=mask)["mask"].shape == (64, 64)


def test_object_crops_are_centred_on_labelled_foreground():
    from trashseg.augment import build_transform
    from trashseg.config import AugmentConfig

    image = np.zeros((128, 128, 3), np.uint8)
    mask = np.zeros((128, 128), np.uint8)
    mask[100:110, 5:15] = 3  # one small object in a corner: a random 32² crop rarely holds it
    mask[:8, 120:] = 255  # ignored pixels are not objects
    centred = AugmentConfig(preset="none", image_size=128, crop_size=32, object_crop_prob=1.0)
    plain = AugmentConfig(preset="none", image_size=128, crop_size=32)
    hits = [
        (build_transform(c, train=True)(image=image, mask=mask)["mask"] == 3).any()
        for c in [centred] * 20 + [plain] * 20
    ]
    assert all(hits[:20]) and sum(hits[20:]) < 15
