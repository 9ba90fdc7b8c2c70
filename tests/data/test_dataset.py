import numpy as np

from tests.conftest import CLASSES
from trashseg.data.cache import ImageCache
from trashseg.data.coco import load_split
from trashseg.data.dataset import SegmentationDataset
from trashseg.data.images import read_image
from trashseg.data.masks import MaskCache


def test_sample_is_uint8_hwc_with_aligned_mask(tiny):
    split = load_split(tiny / "train.json", tiny, CLASSES)
    ds = SegmentationDataset(split, MaskCache(split, tiny / "c"), image_cache=ImageCache(tiny / "i"))
    s = ds[0]
    assert s["image"].dtype.is_floating_point is False and tuple(s["image"].shape) == (32, 48, 3)
    assert s["mask"][5, 5] == 2 and s["file_name"] == "batch_01/0001.png"


def test_presized_caches_resize_once_and_invalidate_on_file_change(tiny):
    split = load_split(tiny / "train.json", tiny, CLASSES)
    images, masks = ImageCache(tiny / "i", size=64), MaskCache(split, tiny / "c", size=64)
    img = images.get(tiny / "batch_01/0001.png")
    assert img.shape == (64, 64, 3) and img[0, 0, 0] == 128
    mask = masks.get(split.images[0])
    assert mask.shape == (64, 64) and set(np.unique(mask)) == {0, 1, 2}  # nearest: no invented labels
    import cv2

    cv2.imwrite(str(tiny / "batch_01/0001.png"), np.full((32, 48, 3), 7, np.uint8))
    assert images.get(tiny / "batch_01/0001.png")[0, 0, 0] == 7


def test_torn_cache_entry_is_rebuilt(tiny):
    cache = ImageCache(tiny / "i")
    path = tiny / "batch_01/0001.png"
    cache.get(path)
    entry = next((tiny / "i").rglob("*.npy"))
    entry.write_bytes(b"\x93NUMPY garbage")
    assert np.array_equal(cache.get(path), read_image(path))
