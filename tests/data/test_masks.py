import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.helpers import CLASSES, make_coco
from trashseg.data.coco import load_split
from trashseg.data.masks import MaskCache, rasterize
from trashseg.errors import TrashsegError


def _split(tmp_path, anns, h=32, w=48):
    images = [{"id": 1, "file_name": "a.png", "height": h, "width": w}]
    return load_split(make_coco(tmp_path, annotations=anns, images=images), tmp_path, CLASSES)


def test_small_objects_are_drawn_on_top_of_large_ones(tiny):
    split = load_split(tiny / "train.json", tiny, CLASSES)
    mask, problems = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    assert not problems
    assert mask[5, 5] == 2  # Metal square wins inside the Paper rectangle
    assert mask[12, 15] == 1  # Paper elsewhere
    assert mask[25, 40] == 0


def test_order_is_by_area_not_file_order(tmp_path):
    small = {"id": 1, "image_id": 1, "category_id": 2, "area": 16, "segmentation": [[4, 4, 8, 4, 8, 8, 4, 8]]}
    big = {"id": 2, "image_id": 1, "category_id": 1, "area": 320, "segmentation": [[0, 0, 20, 0, 20, 16, 0, 16]]}
    split = _split(tmp_path, [small, big])
    mask, _ = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    assert mask[5, 5] == 2


def test_multipart_polygon_fills_every_part(tiny):
    split = load_split(tiny / "train.json", tiny, CLASSES)
    mask, _ = rasterize(split.anns_by_image[2], 32, 48, split.cat_to_class)
    assert mask[2, 2] == 3 and mask[12, 12] == 3 and mask[7, 7] == 0


def test_compressed_and_uncompressed_rle(tmp_path):
    truth = np.zeros((32, 48), np.uint8, order="F")
    truth[3:9, 10:30] = 1
    compressed = mask_utils.encode(np.asfortranarray(truth))
    compressed["counts"] = compressed["counts"].decode()
    # uncompressed: column-major run lengths starting with zeros
    flat = truth.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "area": 120, "segmentation": compressed},
        {"id": 2, "image_id": 1, "category_id": 2, "area": 119, "segmentation": {"size": [32, 48], "counts": runs}},
    ]
    split = _split(tmp_path, anns[:1])
    mask, _ = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    assert np.array_equal(mask == 1, truth.astype(bool))
    split = _split(tmp_path, anns[1:])
    mask, _ = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    assert np.array_equal(mask == 2, truth.astype(bool))


def test_degenerate_parts_dropped_and_reported_with_ids(tmp_path):
    anns = [
        {
            "id": 5,
            "image_id": 1,
            "category_id": 1,
            "area": 16,
            "segmentation": [[1, 1, 2, 2], [4, 4, 8, 4, 8, 8, 4, 8]],
        },  # 2-point part dropped, square kept
        {"id": 6, "image_id": 1, "category_id": 1, "area": 4, "segmentation": [[0, 0, float("nan"), 1, 2, 2]]},
        {"id": 7, "image_id": 1, "category_id": 1, "area": 0, "segmentation": [[0, 0, 5, 0, 10, 0]]},
        {"id": 8, "image_id": 1, "category_id": 2, "area": 9, "segmentation": [[40, 20, 60, 20, 60, 40, 40, 40]]},
    ]
    split = _split(tmp_path, anns)
    mask, problems = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    text = "\n".join(str(p) for p in problems)
    assert "image_id=1 ann_id=5: polygon part 0 has 2 point(s)" in text
    assert "ann_id=6: polygon part 0 has NaN" in text
    assert "ann_id=7" in text and "covers no pixel" in text
    assert "ann_id=8" in text and "outside" in text and "clipped" in text
    assert mask[5, 5] == 1  # the good part of ann 5 survived
    assert mask[25, 45] == 2  # clipped, still drawn


def test_cache_reuses_and_invalidates_on_annotation_change(tmp_path, monkeypatch):
    path = make_coco(tmp_path)
    cache_dir = tmp_path / "cache"
    split = load_split(path, tmp_path, CLASSES)
    cache = MaskCache(split, cache_dir)
    image = split.images[0]
    first = cache.get(image)
    assert cache.path(image).exists()
    calls = []
    monkeypatch.setattr("trashseg.data.masks.rasterize", lambda *a, **k: calls.append(1) or (first, []))
    assert np.array_equal(cache.get(image), first) and not calls  # served from disk
    monkeypatch.undo()
    data = json.loads(path.read_text())
    data["annotations"][1]["segmentation"] = [[30, 20, 40, 20, 40, 30, 30, 30]]
    path.write_text(json.dumps(data))
    changed = MaskCache(load_split(path, tmp_path, CLASSES), cache_dir).get(image)
    assert changed[5, 5] == 1 and changed[25, 35] == 2


def test_rle_counts_that_do_not_add_up_are_a_named_error_and_never_cached(tmp_path):
    """Issue 16.4: pycocotools would decode a short RLE into uninitialised memory (and cache it), and crash on a
    long one; the loader names the image and annotation instead."""
    for counts in ([100, 50], [100, 50, 32 * 48]):
        ann = {"id": 7, "image_id": 1, "category_id": 1, "segmentation": {"size": [32, 48], "counts": counts}}
        split = _split(tmp_path, [ann])
        cache = MaskCache(split, tmp_path / "cache")
        with pytest.raises(
            TrashsegError,
            match=r"train.json image_id=1 ann_id=7: RLE counts cover \d+ pixels, the "
            r"48x32 image has 1536",
        ):
            cache.get(split.images[0])
        assert not list((tmp_path / "cache").rglob("*.npy"))


def test_polygons_that_would_cost_more_than_their_image_are_dropped_unwalked(tmp_path):
    """pycocotools walks a polygon's whole outline at 5× before it clips: a coordinate of 1e12 (or 10**30, past
    its C int) would cost gigabytes or crash. Such parts are dropped and listed like any degenerate part."""
    zigzag = [v for k in range(400) for v in (0 if k % 2 else 47, k % 32)]  # 400 edges across a 48 px image
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "area": 1, "segmentation": [[0, 0, 1e12, 0, 0, 1e12]]},
        {"id": 2, "image_id": 1, "category_id": 1, "area": 1, "segmentation": [[0, 0, 10**30, 0, 0, 5]]},
        {"id": 3, "image_id": 1, "category_id": 1, "area": 1, "segmentation": [zigzag * 8]},
        {"id": 4, "image_id": 1, "category_id": 2, "area": 1, "segmentation": [[-40, -20, 90, -20, 90, 60, -40, 60]]},
    ]
    split = _split(tmp_path, anns)
    mask, problems = rasterize(split.anns_by_image[1], 32, 48, split.cat_to_class)
    text = "\n".join(str(p) for p in problems)
    assert "ann_id=1: polygon part 0 reaches more than an image size beyond the 48x32 image; dropped" in text
    assert "ann_id=2: polygon part 0 reaches more than an image size beyond" in text
    assert "ann_id=3: polygon part 0 has an outline longer than all the pixel edges of the 48x32 image" in text
    assert (mask == 2).all()  # within an image size around it: clipped to the image, as before


def test_a_json_size_over_the_pixel_limit_is_named_before_any_mask_is_allocated(tmp_path):
    """eda and report draw masks at the JSON's size without reading an image: 10^5 × 10^5 would ask for 10 GB."""
    from trashseg.config import DataConfig
    from trashseg.data.check import check_split

    images = [{"id": 1, "file_name": "a.png", "height": 100_000, "width": 100_000}]
    anns = [{"id": 3, "image_id": 1, "category_id": 1, "area": 16, "segmentation": [[4, 4, 8, 4, 8, 8, 4, 8]]}]
    path = make_coco(tmp_path, annotations=anns, images=images, write_images=False)
    split = load_split(path, tmp_path, CLASSES)
    with pytest.raises(TrashsegError, match=r"image_id=1: the JSON says 100000x100000, over the limit of 40000000"):
        MaskCache(split, tmp_path / "cache").get(split.images[0])
    assert not (tmp_path / "cache").exists()
    problems = check_split(path, DataConfig(root=tmp_path, classes=CLASSES), workers=1).problems
    assert [p.code for p in problems if p.image_id == 1 and "JSON says" in p.message] == ["too_many_pixels"]
