"""Named augmentation presets → an albumentations pipeline.

Presets are data (name → function building the transform list) so a new one is one entry, not another branch.
Every geometric transform fills the border it creates with image 0 and mask ``ignore_index``: the loss then skips
pixels that never existed instead of learning "black corner = background". Masks keep albumentations' default
nearest-neighbour interpolation so no label is invented between two classes.
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2

from trashseg.config import IGNORE_INDEX, AugmentConfig, hw

HW = tuple[int, int]
Preset = Callable[[HW, int], list[A.BasicTransform | A.BaseCompose]]  # ((H, W), ignore_index) -> transforms


def _border(ignore_index: int) -> dict:
    """Constant borders: black image, ignored mask."""
    return {"border_mode": cv2.BORDER_CONSTANT, "fill": 0, "fill_mask": ignore_index}


def _seed(
    size: HW, ignore_index: int, colour: list[A.BasicTransform] | None = None
) -> list[A.BasicTransform | A.BaseCompose]:
    """The competition team's set (their best public recipe); `colour` replaces its two light colour transforms."""
    return [
        A.Rotate(limit=30, p=0.3, **_border(ignore_index)),
        A.RandomResizedCrop(size=size, scale=(0.5, 1.0), p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.2),
        A.OneOf([A.MotionBlur(), A.GridDistortion(**_border(ignore_index))], p=0.2),
        *(colour or [A.HueSaturationValue(p=0.3), A.RandomBrightnessContrast(p=0.3)]),
        A.ImageCompression(quality_range=(70, 100), p=0.2),
    ]


def _seed_photometric(size: HW, ignore_index: int) -> list[A.BasicTransform | A.BaseCompose]:
    """The seed's set with mmseg's PhotoMetricDistortion (brightness ±32, contrast and saturation ×0.5-1.5, hue ±18,
    each at p 0.5) and a colour cast (RGBShift): what differs most between cameras, waters and lights is colour,
    so a model that must work on other videos than it was trained on should not lean on it."""
    return _seed(
        size,
        ignore_index,
        colour=[
            A.RandomBrightnessContrast(brightness_limit=0.125, contrast_limit=0.5, p=0.5),
            A.HueSaturationValue(hue_shift_limit=18, sat_shift_limit=40, val_shift_limit=0, p=0.5),
            A.RGBShift(r_shift_limit=20, g_shift_limit=20, b_shift_limit=20, p=0.3),
        ],
    )


def _light(size: HW, ignore_index: int) -> list[A.BasicTransform | A.BaseCompose]:
    """Crop + flip only: cheap enough for CPU runs."""
    return [A.RandomResizedCrop(size=size, scale=(0.5, 1.0), p=1.0), A.HorizontalFlip(p=0.5)]


def _none(size: HW, ignore_index: int) -> list[A.BasicTransform | A.BaseCompose]:
    return [A.Resize(*size)]


PRESETS: dict[str, Preset] = {"seed": _seed, "seed_photometric": _seed_photometric, "light": _light, "none": _none}


def build_transform(cfg: AugmentConfig, train: bool, ignore_index: int = IGNORE_INDEX) -> A.Compose:
    """The training pipeline of ``cfg.preset``, or for validation/test a plain deterministic resize to S×S (H×W).

    With ``crop_size`` C < S, training ends with a random C×C crop: objects keep the scale they have at S×S
    (where validation and inference see them) while a step costs (C/S)² of a full-size one. With
    ``object_crop_prob`` p, a share p of the crops is centred on labelled foreground (albumentations'
    CropNonEmptyMaskIfExists), so mostly-background photos still show the model their objects.
    """
    size = hw(cfg.image_size)
    if not train:
        return A.Compose(_none(size, ignore_index))
    transforms = [A.Resize(*size)] if cfg.preset != "none" else []
    transforms += PRESETS[cfg.preset](size, ignore_index)
    crop = _fit(hw(cfg.crop_size), size) if cfg.crop_size else size
    if crop != size:
        transforms.append(_crop(crop, cfg.object_crop_prob, ignore_index))
    return A.Compose(transforms)


def _fit(crop: HW, size: HW) -> HW:
    """A crop side larger than the image's is cut to it: [192, 192] crops from a 160×320 image are 160×192."""
    return min(crop[0], size[0]), min(crop[1], size[1])


def _crop(size: HW, object_prob: float, ignore_index: int) -> A.BasicTransform | A.BaseCompose:
    if not object_prob:
        return A.RandomCrop(*size)
    on_objects = A.CropNonEmptyMaskIfExists(*size, ignore_values=[0, ignore_index], p=object_prob)
    return A.OneOf([on_objects, A.RandomCrop(*size, p=1 - object_prob)], p=1.0)
