import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers import CLASSES, make_coco, write_bomb, write_image
from trashseg.augment import build_transform
from trashseg.config import AugmentConfig
from trashseg.data.cache import ImageCache
from trashseg.data.coco import load_split, parse_split
from trashseg.data.dataset import SegmentationDataset
from trashseg.data.images import ImageTooLarge, decode_image, read_image
from trashseg.data.masks import MaskCache
from trashseg.errors import TrashsegError


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
    cv2.imwrite(str(tiny / "batch_01/0001.png"), np.full((32, 48, 3), 7, np.uint8))
    assert images.get(tiny / "batch_01/0001.png")[0, 0, 0] == 7


def test_torn_cache_entry_is_rebuilt(tiny):
    cache = ImageCache(tiny / "i")
    path = tiny / "batch_01/0001.png"
    cache.get(path)
    entry = next((tiny / "i").rglob("*.npy"))
    entry.write_bytes(b"\x93NUMPY garbage")
    assert np.array_equal(cache.get(path), read_image(path))


def _exif_rotated(root, json_size):
    """A JPEG stored 40 wide × 20 high (left half white) whose EXIF says "rotate 90°", with a JSON of `json_size`."""
    w, h = json_size
    images = [{"id": 1, "file_name": "rot.jpg", "height": h, "width": w}]
    anns = [{"id": 5, "image_id": 1, "category_id": 1, "area": 4.0, "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}]
    path = make_coco(root, annotations=anns, images=images, write_images=False)
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    Image.fromarray(pixels).save(root / "rot.jpg", exif=exif, quality=95)
    return load_split(path, root, CLASSES)


def test_exif_rotated_image_is_read_as_stored_everywhere(tmp_path):
    """Issue 16.5: the JSON describes the stored pixels, so training (albumentations included), predict, overlays
    (read_image) and serve (decode_image) all use them as stored."""
    split = _exif_rotated(tmp_path, (40, 20))
    ds = SegmentationDataset(
        split, MaskCache(split, tmp_path / "c"), build_transform(AugmentConfig(image_size=32), train=True)
    )
    assert tuple(ds[0]["image"].shape) == (32, 32, 3) and tuple(ds[0]["mask"].shape) == (32, 32)
    for image in (read_image(tmp_path / "rot.jpg"), decode_image((tmp_path / "rot.jpg").read_bytes(), "rot.jpg")):
        assert image.shape == (20, 40, 3) and image[:, :18].min() > 200 and image[:, 22:].max() < 50


def test_image_that_disagrees_with_its_json_is_a_named_error(tmp_path):
    """Issue 16.5: a JSON written for the rotated view fails with the file and image id, not albumentations'
    shape ValueError."""
    split = _exif_rotated(tmp_path, (20, 40))
    ds = SegmentationDataset(
        split, MaskCache(split, tmp_path / "c"), build_transform(AugmentConfig(image_size=32), train=True)
    )
    with pytest.raises(TrashsegError, match=r"rot.jpg image_id=1: decoded as 40x20 but .*says 20x40"):
        ds[0]


def test_file_names_outside_the_root_are_refused(tmp_path):
    """Issue 16.2: the loader refuses to read what data check lists."""
    write_image(tmp_path / "secret.png")
    images = [{"id": 1, "file_name": "../secret.png", "height": 32, "width": 48}]
    path = make_coco(tmp_path / "data", images=images, annotations=[], write_images=False)
    with pytest.raises(TrashsegError, match=r"image_id=1: '../secret.png' is absolute or contains '..'"):
        load_split(path, tmp_path / "data", CLASSES)
    split = parse_split(path, tmp_path / "data", CLASSES)
    with pytest.raises(TrashsegError, match="contains '..'"):
        SegmentationDataset(split, cache=None).load(0)


def test_image_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    """Issue 16.3: a 6 kB PNG declaring 49 MP never reaches the decoder nor the cache."""
    bomb = write_bomb(tmp_path / "bomb.png")
    monkeypatch.setattr(cv2, "imread", lambda *a: pytest.fail("decoded a bomb"))
    with pytest.raises(ImageTooLarge, match=r"bomb.png: 7000×7000 is 49.0 MP, over the limit of 40.0 MP"):
        ImageCache(tmp_path / "i").get(bomb)
    with pytest.raises(ImageTooLarge):
        ImageCache(tmp_path / "i").get(bomb, max_pixels=10)
    assert not (tmp_path / "i").exists()
