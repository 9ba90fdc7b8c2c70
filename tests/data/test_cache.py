"""The decoded-image cache (issue 16.8: a cache folder that cannot be written is named, with how to move it)."""

import numpy as np
import pytest

from tests.helpers import fill_disk, make_read_only, write_image
from trashseg.data.cache import ImageCache
from trashseg.errors import DiskFull, TrashsegError


def test_read_only_cache_folder_is_named_with_the_settings_that_move_it(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    cache = ImageCache(make_read_only(tmp_path / "cache", monkeypatch))
    with pytest.raises(
        TrashsegError,
        match=r"cannot create folder .*cache/[0-9a-f]{2}: Permission denied; .*"
        r"set data.cache_dir or \$TRASHSEG_CACHE to a writable folder",
    ):
        cache.get(tmp_path / "a.png")


def test_a_full_cache_disk_is_named_and_the_next_run_fills_the_entry(tmp_path, monkeypatch):
    """Issue 27.2: the entry that does not fit is DiskFull naming the cache folder and how to move it; nothing torn
    is left for a later run to load, and once there is room the same call stores it."""
    write_image(image := tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache")
    fill_disk(monkeypatch, tmp_path / "cache", free=100)
    with pytest.raises(DiskFull, match=r"cache/[0-9a-f]{2} is full \(no space left on its disk\).*data.cache_dir"):
        cache.get(image)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    monkeypatch.undo()
    first = cache.get(image)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1 and np.array_equal(cache.get(image), first)


def test_one_cache_layout_decided_from_the_config(tiny, tmp_path, monkeypatch):
    """Every stage that reads masks or cached images finds them where `data.cache_dir` says (issue 15.3)."""
    from trashseg.config import DataConfig
    from trashseg.data.cache import image_cache
    from trashseg.data.coco import load_split
    from trashseg.data.masks import mask_cache

    classes = ["Background", "Paper", "Metal", "Battery"]
    split = load_split(tiny / "train.json", tiny, classes)
    data = DataConfig(root=tiny, classes=classes, cache_dir=tmp_path / "c", cache_size=16)
    plain, presized = mask_cache(split, data), mask_cache(split, data, presized=True)
    assert plain.dir == presized.dir == tmp_path / "c" / "masks"
    assert plain.size is None and presized.size == 16  # scoring reads masks at their own size
    assert plain.get(split.images[0]).shape == (32, 48) and presized.get(split.images[0]).shape == (16, 16)
    assert image_cache(data).dir == tmp_path / "c" / "images" and image_cache(data).size == 16
    assert image_cache(data.model_copy(update={"cache_images": False})) is None
    monkeypatch.setenv("TRASHSEG_CACHE", str(tmp_path / "env"))
    assert mask_cache(split, DataConfig(classes=classes)).dir == tmp_path / "env" / "masks"
