"""Generated hostile COCO files (polygons, RLE, ids, file names) and tool exports: every parser of them ends in a
listed problem or a named error (a TrashsegError), never another exception, and in memory bounded by the image."""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from pycocotools import mask as mask_utils

from tests.helpers import CLASSES, write_image
from trashseg.config import DataConfig
from trashseg.data.check import check_split
from trashseg.data.coco import load_split
from trashseg.data.convert import normalise_coco, own_classes
from trashseg.data.masks import MaskCache
from trashseg.errors import TrashsegError

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
coordinate = st.one_of(
    st.floats(-4, 12),
    st.integers(-2, 10),
    st.floats(),  # NaN, infinities, 1e308
    st.integers(-(10**30), 10**30),
)
SIZE = (6, 8)  # every generated image is 8 wide and 6 high
BUDGET_MIB = 256  # what parsing one file may add to the process's peak memory (its images have 48 pixels)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _maybe(good: st.SearchStrategy, bad: st.SearchStrategy = junk) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes a `bad` one (by default anything JSON can hold)."""
    return st.one_of(good, good, good, good, bad)


@st.composite
def rle(draw) -> dict:
    """Counts that add up (or nearly), compressed strings of a real mask (or cut and mutated), odd sizes."""
    h, w = SIZE
    cuts = sorted(draw(st.lists(st.integers(0, h * w), max_size=6)))
    counts = [b - a for a, b in zip([0, *cuts], [*cuts, h * w], strict=True)]
    if draw(st.booleans()):
        counts[draw(st.integers(0, len(counts) - 1))] += draw(st.integers(-3, 3) | st.integers())
    bits = np.asfortranarray(np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w)), np.uint8))
    string = mask_utils.encode(bits.reshape(h, w, order="F"))["counts"].decode("ascii")
    if draw(st.booleans()):
        k = draw(st.integers(0, len(string)))
        string = string[:k] + draw(st.text(st.characters(min_codepoint=32, max_codepoint=130), max_size=3))
    return {
        "size": draw(st.just([h, w]) | st.just([w, h]) | st.lists(st.integers(-1, 9), max_size=3) | junk),
        "counts": draw(st.just(counts) | st.just(string) | junk),
    }


polygon = st.lists(st.lists(coordinate, max_size=10) | junk, max_size=3)
segmentation = _maybe(polygon | rle())


def _corrupt(record: dict, draw) -> dict:
    """The record, or a copy with one field dropped or replaced by anything."""
    choice = draw(st.integers(0, 39))
    key = draw(st.sampled_from(sorted(record)))
    if choice == 0:
        return {k: v for k, v in record.items() if k != key}
    if choice == 1:
        return {**record, key: draw(junk)}
    return record


@st.composite
def coco(draw, file_names: st.SearchStrategy) -> dict:
    """A COCO file that is mostly right: two images, three categories, annotations whose geometry is fuzzed; any
    record may lose or garble a field, and now and then a whole section is anything."""
    h, w = SIZE
    images = [
        _corrupt(
            {
                "id": i,
                "file_name": (draw(file_names) if draw(st.integers(0, 9)) == 0 else name),
                "height": h,
                "width": w,
            },
            draw,
        )
        for i, name in ((1, "a.png"), (2, "images/b.png"))
    ]
    categories = [_corrupt({"id": i, "name": name}, draw) for i, name in enumerate(CLASSES[1:], 1)]
    annotations = [
        _corrupt(
            {
                "id": k,
                "image_id": draw(st.sampled_from([1, 2])),
                "category_id": draw(st.sampled_from([1, 2, 3])),
                "segmentation": draw(segmentation),
                "area": draw(st.floats(0, 50)),
                "iscrowd": 0,
            },
            draw,
        )
        for k in range(1, draw(st.integers(0, 4)) + 1)
    ]
    data = {"images": images, "categories": categories, "annotations": annotations}
    return _corrupt(data, draw) if draw(st.integers(0, 9)) == 0 else data


names = st.sampled_from(
    ["a.png", "images/b.png", "/data/upload/1/0a1b2c3d-a.png", "../a.png", "/etc/hosts", "x\x00", "l" * 300]
)


def _write(folder: Path, name: str, content) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content, allow_nan=True), encoding="utf-8")
    return path


@FUZZ
@given(data=_maybe(coco(names), junk | st.binary(max_size=40)))
@example(
    data={
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "Paper"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1e12, 0, 0, 1e12]]}],
    }
)  # pycocotools would walk a 5e12-pixel outline: gigabytes and minutes
@example(
    data={
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "Paper"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": 8, "counts": "0"}}],
    }
)
def test_data_check_and_the_loader_name_whatever_a_coco_file_holds(tmp_path: Path, data) -> None:
    start_mib = _peak_mib()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    write_image(folder / "a.png", *SIZE)
    write_image(folder / "images" / "b.png", *SIZE)
    path = _write(folder, "train.json", data)
    report = check_split(path, DataConfig(root=folder, classes=CLASSES), workers=1)
    assert all(p.severity in ("error", "warning") and p.message for p in report.problems)
    try:
        split = load_split(path, folder, CLASSES)
        cache = MaskCache(split, folder / "cache")
        for img in split.images:
            mask = cache.get(img)
            assert mask.shape == (img["height"], img["width"]) and mask.dtype == np.uint8
        event(f"loaded, {len(split.images)} masks")
    except TrashsegError as exc:
        event("named error")
        assert str(exc)
    assert _peak_mib() < start_mib + BUDGET_MIB


@FUZZ
@given(data=_maybe(coco(names | st.text(max_size=8)), junk | st.binary(max_size=40)), own=st.booleans())
@example(
    data={
        "images": [{"id": 1, "file_name": "/etc/hosts", "height": 6, "width": 8}],
        "categories": [{"id": 1, "name": "Paper"}],
    },
    own=False,
)
def test_convert_coco_names_whatever_an_export_holds(tmp_path: Path, data, own: bool) -> None:
    """CVAT and Label Studio exports (COCO) with images a.png and images/b.png in --images."""
    images = tmp_path / "images"
    if not images.exists():
        write_image(images / "a.png", *SIZE)
        write_image(images / "images" / "b.png", *SIZE)
    start_mib = _peak_mib()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    export = _write(folder, "export.json", data)
    try:
        classes = own_classes(export) if own else CLASSES
        result = normalise_coco(export, classes, folder / "data" / "train.json", images_dir=images)
    except TrashsegError as exc:
        event(type(exc).__name__)
        assert str(exc)
        assert not (folder / "data" / "train.json").exists()
        assert _peak_mib() < start_mib + BUDGET_MIB
        return
    event(f"converted {result.images} images")
    written = json.loads(result.out.read_text(encoding="utf-8"))
    assert len(written["images"]) == result.images and len(written["annotations"]) == result.annotations
    assert all(not Path(img["file_name"]).is_absolute() for img in written["images"])
    assert load_split(result.out, result.out.parent, classes).images == written["images"]
