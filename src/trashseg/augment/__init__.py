"""Training augmentation: albumentations presets, minority copy-paste and CutMix."""

from trashseg.augment.copy_paste import CopyPasteDataset, cutmix, paste_objects
from trashseg.augment.presets import PRESETS, build_transform

__all__ = ["PRESETS", "CopyPasteDataset", "build_transform", "cutmix", "paste_objects"]
