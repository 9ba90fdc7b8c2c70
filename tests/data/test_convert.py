"""Labels in: class masks, colour masks and CVAT / Label Studio COCO exports → a dataset `data check` passes and
whose rasterised masks are the input's, pixel for pixel; bad inputs named, nothing written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from pycocotools import mask as mask_utils

from trashseg.config import RECYCLING_CLASSES, DataConfig
from trashseg.data.coco import load_split
from trashseg.data.convert import (
    ConvertError,
    MaskValueError,
    MissingImageFile,
    OutsideImages,
    SizeMismatch,
    UnknownCategory,
    masks_to_coco,
    normalise_coco,
    read_class_list,
    read_labelmap,
    region_polygons,
)
from trashseg.data.masks import mask_cache
from trashseg.errors import TrashsegError

CLASSES = list(RECYCLING_CLASSES)


def _masks(root: Path, name: str, classes: list[str]) -> dict[str, np.ndarray]:
    """file_name → rasterised class mask of a split, as training sees it."""
    split = load_split(root / name, root, classes)
    cache = mask_cache(split, DataConfig(root=root, classes=classes))
    return {img["file_name"]: cache.get(img) for img in split.images}


def _write_masks(masks: dict[str, np.ndarray], folder: Path, palette: np.ndarray | None = None) -> None:
    for name, mask in masks.items():
        path = folder / Path(name).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), mask if palette is None else palette[mask][..., ::-1])


def _tiny_classes(root: Path) -> list[str]:
    cats = json.loads((root / "train.json").read_text())["categories"]
    return ["Background"] + [c["name"] for c in sorted(cats, key=lambda c: c["id"])]


def test_region_polygons_are_exact_or_absent() -> None:
    """Pixel-edge outlines rasterise to exactly the region; a ring (a hole) has no faithful polygon."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        region = np.zeros((40, 50), np.uint8)
        cv2.fillPoly(region, [rng.integers(0, 50, (6, 2)).astype(np.int32)], 1)
        polygons = region_polygons(region)
        if polygons is not None:
            drawn = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, 40, 50)))
            assert np.array_equal(drawn, region)
    ring = np.zeros((20, 20), np.uint8)
    cv2.circle(ring, (10, 10), 7, 1, -1)
    cv2.circle(ring, (10, 10), 3, 0, -1)
    assert region_polygons(ring) is None
    square = np.zeros((20, 20), np.uint8)
    square[3:9, 4:12] = 1
    assert region_polygons(square) == [[4.0, 3.0, 4.0, 9.0, 12.0, 9.0, 12.0, 3.0]]


def test_class_masks_round_trip(sample_data: Path, tmp_path: Path, cli) -> None:
    """masks → COCO → data check passes → the rasterised masks are the input masks, pixel for pixel."""
    truth = _masks(sample_data, "train.json", CLASSES)
    first = next(iter(truth.values()))
    cv2.circle(first, (20, 20), 12, 3, -1)
    cv2.circle(first, (20, 20), 5, 0, -1)  # a ring: a hole, which only RLE holds
    _write_masks(truth, tmp_path / "masks")
    out = tmp_path / "data" / "train.json"
    code, text = cli(["convert", "masks", tmp_path / "masks", "--images", sample_data, "--out", out])
    assert code == 0, text
    assert f"{len(truth)} images" in text
    code, text = cli(["data", "check", out.parent, "--report", tmp_path / "check.json"])
    assert code == 0, text
    back = _masks(out.parent, "train.json", CLASSES)
    assert {Path(n).relative_to("images").as_posix() for n in back} == set(truth)
    for name, mask in back.items():
        assert np.array_equal(mask, truth[Path(name).relative_to("images").as_posix()]), name
    coco = json.loads(out.read_text())
    kinds = {type(a["segmentation"]).__name__ for a in coco["annotations"]}
    assert kinds == {"list", "dict"}  # polygons where faithful, RLE for the rest


def test_colour_masks_with_cvat_labelmap(tiny: Path, tmp_path: Path, cli) -> None:
    """CVAT "Segmentation mask 1.1": colour PNGs in SegmentationClass/ + labelmap.txt, classes from the map."""
    classes = _tiny_classes(tiny)
    truth = _masks(tiny, "train.json", classes)
    palette = np.array([[0, 0, 0], [250, 50, 83], [51, 221, 255], [36, 179, 83]], np.uint8)
    export = tmp_path / "cvat"
    _write_masks({Path(n).name: m for n, m in truth.items()}, export / "SegmentationClass", palette)
    for name in truth:
        shutil.copy(tiny / name, (export / "JPEGImages").mkdir(parents=True, exist_ok=True) or export / "JPEGImages")
    (export / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
        + "".join(f"{name}:{','.join(map(str, palette[i]))}::\n" for i, name in enumerate(classes) if i)
    )
    out = tmp_path / "data" / "train.json"
    code, text = cli(
        [
            "convert",
            "masks",
            export / "SegmentationClass",
            "--images",
            export / "JPEGImages",
            "--colours",
            export / "labelmap.txt",
            "--own-classes",
            "--out",
            out,
        ]
    )
    assert code == 0, text
    assert "classes (4) recorded in" in text
    assert yaml.safe_load((out.parent / "dataset.yaml").read_text())["classes"] == classes
    code, text = cli(["split", out.parent, "--folds", "2", "--group-by", ""])  # no class list typed again
    assert code == 0, text
    assert "Battery" in text and "General trash" not in text
    back = _masks(out.parent, "train.json", classes)
    for name, mask in back.items():
        assert np.array_equal(mask, truth[f"batch_01/{Path(name).name}"]), name


def _cvat_export(tiny: Path, tmp: Path) -> Path:
    """tiny as CVAT's "COCO 1.0" writes it: annotations/instances_default.json + images/, bare file names, an
    uncompressed iscrowd RLE, no area, and a box with an empty segmentation."""
    data = json.loads((tiny / "train.json").read_text())
    (tmp / "images").mkdir(parents=True)
    for img in data["images"]:
        shutil.copy(tiny / img["file_name"], tmp / "images")
        img["file_name"] = Path(img["file_name"]).name
    paper = data["annotations"][0]
    h, w = data["images"][0]["height"], data["images"][0]["width"]
    full = mask_utils.decode(mask_utils.frPyObjects(paper["segmentation"], h, w)[0])
    counts, value, run = [], 0, 0
    for pixel in full.ravel(order="F"):
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    paper.update(segmentation={"counts": counts, "size": [h, w]}, iscrowd=1)
    del data["annotations"][1]["area"]
    data["annotations"].append(
        {
            "id": 99,
            "image_id": 2,
            "category_id": 1,
            "segmentation": [],
            "area": 4.0,
            "bbox": [20, 20, 2, 2],
            "iscrowd": 0,
            "attributes": {"occluded": False},
        }
    )
    path = tmp / "annotations" / "instances_default.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def _label_studio_export(tiny: Path, tmp: Path) -> Path:
    """tiny as Label Studio's COCO export writes it: ids from 0, categories from 0 in another order,
    /data/upload/<project>/<hash>-<name> file names, images beside it under their uploaded names."""
    data = json.loads((tiny / "train.json").read_text())
    (tmp / "images").mkdir(parents=True)
    ids = {c["id"]: k for k, c in enumerate(reversed(data["categories"]))}
    data["categories"] = [{"id": ids[c["id"]], "name": c["name"]} for c in data["categories"]]
    for k, img in enumerate(data["images"]):
        shutil.copy(tiny / img["file_name"], tmp / "images" / f"0a1b2c3d-{Path(img['file_name']).name}")
        img.update(id=k, file_name=f"/data/upload/1/0a1b2c3d-{Path(img['file_name']).name}")
    for k, ann in enumerate(data["annotations"]):
        ann.update(id=k, image_id=ann["image_id"] - 1, category_id=ids[ann["category_id"]])
        ann.pop("area")
    path = tmp / "result.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("make", [_cvat_export, _label_studio_export], ids=["cvat", "label-studio"])
def test_tool_exports_normalise(make, tiny: Path, tmp_path: Path, cli) -> None:
    classes = _tiny_classes(tiny)
    export = make(tiny, tmp_path / "export")
    out = tmp_path / "data" / "train.json"
    code, text = cli(["convert", "coco", export, "--out", out, "--set", f"data.classes=[{','.join(classes)}]"])
    assert code == 0, text
    if make is _cvat_export:
        assert "1 annotation(s) with an empty segmentation (boxes) left out" in text
    code, text = cli(
        [
            "data",
            "check",
            out.parent,
            "--report",
            tmp_path / "check.json",
            "--set",
            f"data.classes=[{','.join(classes)}]",
        ]
    )
    assert code == 0, text
    truth = _masks(tiny, "train.json", classes)
    back = _masks(out.parent, "train.json", classes)
    assert [Path(n).name.removeprefix("0a1b2c3d-") for n in back] == [Path(n).name for n in truth]
    for (name, mask), expected in zip(back.items(), truth.values(), strict=True):
        assert np.array_equal(mask, expected), name
    coco = json.loads(out.read_text())
    assert all(a["area"] > 0 and len(a["bbox"]) == 4 for a in coco["annotations"])
    assert all(isinstance(a["segmentation"]["counts"], str) for a in coco["annotations"] if a["iscrowd"])


def _nothing_written(out: Path) -> bool:
    return not out.exists() and not (out.parent / "images").exists()


def test_mask_value_out_of_range_is_named(tiny: Path, tmp_path: Path) -> None:
    classes = _tiny_classes(tiny)
    masks = _masks(tiny, "train.json", classes)
    masks["batch_01/0002.png"][0, 0] = 7
    _write_masks(masks, tmp_path / "masks")
    out = tmp_path / "data" / "train.json"
    with pytest.raises(MaskValueError, match=r"masks/batch_01/0002\.png: pixel value 7 .* 4 classes"):
        masks_to_coco(tmp_path / "masks", tiny, classes, out)
    assert _nothing_written(out)


def test_mask_size_mismatch_and_missing_image_are_named(tiny: Path, tmp_path: Path) -> None:
    classes = _tiny_classes(tiny)
    masks = _masks(tiny, "train.json", classes)
    masks["batch_01/0001.png"] = np.zeros((10, 10), np.uint8)
    _write_masks(masks, tmp_path / "masks")
    out = tmp_path / "data" / "train.json"
    with pytest.raises(SizeMismatch, match=r"0001\.png: mask is 10x10, its image .*0001\.png is 48x32"):
        masks_to_coco(tmp_path / "masks", tiny, classes, out)
    (tiny / "batch_01/0001.png").unlink()
    with pytest.raises(MissingImageFile, match=r"masks/batch_01/0001\.png: no image"):
        masks_to_coco(tmp_path / "masks", tiny, classes, out)
    assert _nothing_written(out)


def test_unknown_category_and_missing_image_in_export_are_named(tiny: Path, tmp_path: Path, cli) -> None:
    export = _cvat_export(tiny, tmp_path / "export")
    out = tmp_path / "data" / "train.json"
    with pytest.raises(UnknownCategory, match=r"instances_default\.json: categories 'Metal', 'Battery' are not"):
        normalise_coco(export, ["Background", "Paper"], out)
    (tmp_path / "export" / "images" / "0002.png").unlink()
    code, text = cli(["convert", "coco", export, "--out", out, "--classes", _class_file(tiny, tmp_path)])
    assert code == 2
    assert "images[1] (id 2): file_name '0002.png' not found" in text
    assert _nothing_written(out)


def _class_file(tiny: Path, tmp_path: Path) -> Path:
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(_tiny_classes(tiny)) + "\n")
    return path


def test_label_studio_names_found_under_their_original_names(tiny: Path, tmp_path: Path) -> None:
    """/data/upload/1/0a1b2c3d-0001.png is the user's own 0001.png: found in --images without the upload prefix."""
    classes = _tiny_classes(tiny)
    export = _label_studio_export(tiny, tmp_path / "export")
    out = normalise_coco(export, classes, tmp_path / "data" / "train.json", images_dir=tiny / "batch_01").out
    names = [img["file_name"] for img in json.loads(out.read_text())["images"]]
    assert names == ["images/0001.png", "images/0002.png"]


def test_a_different_image_already_in_place_is_refused(tiny: Path, tmp_path: Path) -> None:
    classes = _tiny_classes(tiny)
    export = _cvat_export(tiny, tmp_path / "export")
    out = tmp_path / "data" / "train.json"
    normalise_coco(export, classes, out)
    before = out.read_bytes()
    (out.parent / "images" / "0001.png").unlink()  # a hard link to the export's image: replace, not overwrite
    cv2.imwrite(str(out.parent / "images" / "0001.png"), np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(ConvertError, match=r"images/0001\.png already exists and differs from .*export/images/0001"):
        normalise_coco(export, classes, out)
    assert out.read_bytes() == before


def test_palette_masks_give_their_indices(tiny: Path, tmp_path: Path) -> None:
    """A palette PNG (VOC's SegmentationClass convention) holds class indices whatever its colours."""
    from PIL import Image

    classes = _tiny_classes(tiny)
    truth = _masks(tiny, "train.json", classes)
    for name, mask in truth.items():
        path = tmp_path / "masks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(mask)
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * 756)
        image.save(path)
    out = masks_to_coco(tmp_path / "masks", tiny, classes, tmp_path / "data" / "train.json").out
    assert Image.open(tmp_path / "masks" / "batch_01/0001.png").mode == "P"
    for name, mask in _masks(out.parent, "train.json", classes).items():
        assert np.array_equal(mask, truth[name.removeprefix("images/")]), name


def test_file_names_that_lead_outside_the_images_folder_are_refused(tiny: Path, tmp_path: Path, cli) -> None:
    """An export names the files to link into the dataset: an absolute name, a '..' or a symbolic link out of
    --images would copy any file the user can read into a dataset they share. Refused by image id and name."""
    classes = _tiny_classes(tiny)
    export = _cvat_export(tiny, tmp_path / "export")
    secret = tmp_path / "home" / "secret.png"
    secret.parent.mkdir()
    shutil.copy(tiny / "batch_01" / "0001.png", secret)
    (tmp_path / "export" / "images" / "link.png").symlink_to(secret)
    out = tmp_path / "data" / "train.json"
    for hostile, why in (
        (str(secret), "is absolute"),
        ("../../home/secret.png", "contains '..'"),
        ("images/../../home/secret.png", "contains '..'"),
        ("link.png", "symbolic link"),
    ):
        data = json.loads(export.read_text())
        data["images"][1]["file_name"] = hostile
        export.write_text(json.dumps(data))
        with pytest.raises(OutsideImages, match=rf"images\[1\] \(id 2\): {re.escape(repr(hostile))} .*{why}"):
            normalise_coco(export, classes, out)
        assert _nothing_written(out)
    code, text = cli(["convert", "coco", export, "--out", out, "--classes", _class_file(tiny, tmp_path)])
    assert code == 2 and "refused" in text and _nothing_written(out)
    code, text = cli(
        [
            "convert",
            "coco",
            export,
            "--out",
            out,
            "--classes",
            _class_file(tiny, tmp_path),
            "--set",
            "data.allow_external_links=true",
        ]
    )  # a link the user means is followed, as in data check
    assert code == 0, text
    assert [img["file_name"] for img in json.loads(out.read_text())["images"]][1] == "images/link.png"


@pytest.mark.parametrize(
    ("labelmap", "error"),
    [
        (
            "background:0,0,0::\n" + "".join(f"c{i}:{i // 256},{i % 256},7::\n" for i in range(300)),
            r"labelmap\.txt: 301 classes; masks hold at most 255 \(class ids are 8-bit, 255 = ignore\)",
        ),
        ("background:0,0,0::\ncaf\u00e9:1,2,3::\n", r"labelmap\.txt: not UTF-8 text \(byte 0xe9 at offset 22\)"),
        ("paper:" + "9" * 5000 + ",0,0::\n", r"labelmap\.txt:1: expected 'name:r,g,b::', got 'paper:9{94}\.\.\.'"),
    ],
)
def test_colour_maps_that_cannot_be_class_ids_are_named(tmp_path: Path, cli, labelmap: str, error: str) -> None:
    """More than 255 labels overflowed the 8-bit class ids, and a Latin-1 map was a UnicodeDecodeError: both
    tracebacks from ``convert masks --colours``."""
    masks, images = tmp_path / "masks", tmp_path / "images"
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[2:4, 2:4] = (7, 299 % 256, 1)  # BGR of c299's colour
    masks.mkdir(), images.mkdir()
    cv2.imwrite(str(masks / "a.png"), mask), cv2.imwrite(str(images / "a.jpg"), mask)
    (tmp_path / "labelmap.txt").write_bytes(labelmap.encode("latin-1"))
    args = ["convert", "masks", masks, "--images", images, "--colours", tmp_path / "labelmap.txt", "--own-classes"]
    code, text = cli([*args, "--out", tmp_path / "data" / "train.json"])
    assert code == 2 and re.search(error, " ".join(text.split())) and "Traceback" not in text, text
    assert not (tmp_path / "data").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.lists(st.sampled_from(["background", "a", ":", ",", "0", "255", "256", "-1", "\n", "#", " ", "\u00e9"])),
    raw=st.binary(max_size=100),
)
def test_fuzzed_colour_maps_and_class_lists_read_or_give_a_named_error(tmp_path: Path, text: list[str], raw: bytes):
    path = tmp_path / "labelmap.txt"
    for content in ("".join(text).encode("utf-8"), raw):
        path.write_bytes(content)
        for read in (read_labelmap, read_class_list):
            try:
                read(path)
            except TrashsegError as exc:
                assert str(exc).startswith(str(path)), exc


def test_an_annotation_that_covers_no_pixel_is_left_out_and_named_unless_strict(tiny: Path, tmp_path: Path, cli):
    """Real exports carry slivers (here 0.3 × 0.3 px inside one pixel): the rest of the export is written and each
    one is named; --strict refuses the export for them, as before."""
    export = _cvat_export(tiny, tmp_path / "export")
    data = json.loads(export.read_text())
    sliver = [10.1, 10.1, 10.4, 10.1, 10.4, 10.4, 10.1, 10.4]
    data["annotations"].append({"id": 77, "image_id": 1, "category_id": 2, "segmentation": [sliver], "iscrowd": 0})
    export.write_text(json.dumps(data))
    classes = _class_file(tiny, tmp_path)
    out = tmp_path / "data" / "train.json"
    code, text = cli(["convert", "coco", export, "--out", out, "--classes", classes, "--strict"])
    assert code == 2 and "(id 77)" in text and "covers no pixel" in text and _nothing_written(out), text
    code, text = cli(["convert", "coco", export, "--out", out, "--classes", classes])
    assert code == 0, text
    assert "1 annotation(s) that cover no pixel left out" in text and "annotations[" in text and "(id 77)" in text
    written = json.loads(out.read_text())["annotations"]
    assert len(written) == 3  # tiny's three; the box and the sliver left out
