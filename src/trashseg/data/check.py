"""``trashseg data check``: every mistake a user can make in a dataset, each located by file and id."""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from trashseg.config import DataConfig
from trashseg.data.coco import CocoSplit, Problem, parse_split
from trashseg.data.images import ImageError, ImageSizeMismatch, ImageTooLarge, check_pixels, read_image
from trashseg.data.masks import annotation_rle, oversized
from trashseg.errors import TrashsegError

SPLIT_FILES = ("train.json", "val.json", "test.json", "train_all.json")
_ROTATING_EXIF = {5, 6, 7, 8}  # orientations that swap width and height
_CONVERTED_MODES = {
    "L": "grayscale",
    "LA": "grayscale+alpha",
    "RGBA": "RGBA",
    "P": "palette",
    "CMYK": "CMYK",
    "I;16": "16-bit",
    "I;16B": "16-bit",
    "I": "32-bit integer",
    "F": "float",
}


@dataclass
class SplitReport:
    file: str
    images: int = 0
    annotations: int = 0
    problems: list[Problem] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(p.severity == severity for p in self.problems)


def _image_problems(split: CocoSplit, image: dict) -> list[Problem]:
    """Check the size from the header, then fully decode one image; compare it with what the JSON says about it."""
    try:
        path = split.image_path(image)
    except TrashsegError:
        return []  # outside the dataset root: listed by parse_split, and never opened
    where = dict(file=str(path), image_id=image["id"])
    if not path.is_file():
        return [Problem("error", "missing_image", "image file not found", **where)]
    try:
        check_pixels(path, str(path), split.max_pixels)
        read_image(path, split.max_pixels)  # the decoder training uses: its size must be the header's, checked above
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            mode, (w, h) = im.mode, im.size
            im.load()  # full decode: catches truncated and corrupt files
    except ImageError as exc:
        codes = {ImageTooLarge: "too_many_pixels", ImageSizeMismatch: "size_mismatch"}
        code = codes.get(type(exc), "unreadable_image")
        return [Problem("error", code, exc.detail, **where)]
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise many types on hostile files; list, never crash
        return [Problem("error", "unreadable_image", f"cannot be decoded: {exc}", **where)]
    out = []
    declared = (image["width"], image["height"])
    if declared != (w, h):
        hint = (
            "; the JSON describes the EXIF-rotated view, but pixels are used as stored (EXIF orientation is "
            "ignored): save the image rotated (e.g. PIL.ImageOps.exif_transpose) or fix the JSON"
            if orientation in _ROTATING_EXIF and declared == (h, w)
            else ""
        )
        out.append(
            Problem(
                "error", "size_mismatch", f"JSON says {declared[0]}x{declared[1]}, the image is {w}x{h}{hint}", **where
            )
        )
    elif orientation != 1:
        out.append(
            Problem(
                "warning",
                "exif_rotation",
                f"EXIF orientation {orientation} is ignored: pixels are used as stored",
                **where,
            )
        )
    if mode in _CONVERTED_MODES:
        out.append(
            Problem("warning", "image_mode", f"{_CONVERTED_MODES[mode]} image is converted to 8-bit RGB", **where)
        )
    return out


def _geometry_problems(ann: dict, file: str) -> list[Problem]:
    """Negative area or bbox size: unused by the loader except the area, which orders drawing (largest first)."""
    where = dict(file=file, image_id=ann["image_id"], ann_id=ann["id"])
    fix = "recompute it from the segmentation (pycocotools mask.area / mask.toBbox)"
    out = []
    if ann.get("area", 0) < 0:
        out.append(Problem("error", "negative_area", f"area {ann['area']} is negative; {fix}", **where))
    bbox = ann.get("bbox")
    if bbox is None:
        return out
    numbers = (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)
    )
    if not numbers:
        out.append(Problem("error", "bad_bbox", f"bbox {bbox!r} is not [x, y, width, height]; {fix}", **where))
    elif bbox[2] < 0 or bbox[3] < 0:
        out.append(Problem("error", "negative_bbox", f"bbox {bbox} has a negative width or height; {fix}", **where))
    return out


def _annotation_problems(split: CocoSplit) -> list[Problem]:
    images = {img["id"]: img for img in split.images}
    out = []
    for image_id, anns in split.anns_by_image.items():
        img = images.get(image_id)
        if img is None:
            continue  # already reported as a dangling reference
        if problem := oversized(img, str(split.path), split.max_pixels):
            out.append(problem)  # its polygons' outlines could be as long as its JSON size allows
            continue
        for ann in anns:
            out += _geometry_problems(ann, str(split.path))
            out += annotation_rle(ann, img["height"], img["width"], str(split.path))[1]
    if split.has_annotations:
        out += [
            Problem(
                "warning", "no_annotations", "image has no annotations (all background)", str(split.path), img["id"]
            )
            for img in split.images
            if img["id"] not in split.anns_by_image
        ]
    return out


def check_split(path: Path, data: DataConfig, workers: int = 4) -> SplitReport:
    try:
        split = parse_split(
            path,
            data.root_dir(),
            data.classes,
            max_pixels=data.max_pixels,
            allow_external_links=data.allow_external_links,
        )
    except TrashsegError as exc:
        return SplitReport(str(path), problems=[Problem("error", "unreadable_json", str(exc), str(path))])
    report = SplitReport(
        str(path), len(split.images), sum(len(a) for a in split.anns_by_image.values()), list(split.problems)
    )
    report.problems += _annotation_problems(split)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        for probs in pool.map(lambda img: _image_problems(split, img), split.images):
            report.problems += probs
    return report


def check_dataset(data: DataConfig, files: list[str] | None = None, workers: int = 4) -> list[SplitReport]:
    """Check every split file present under the root: the usual names and the configured ones (or `files`)."""
    root = data.root_dir()
    if not root.is_dir():
        raise TrashsegError(f"{root}: dataset folder not found")
    candidates = dict.fromkeys([*SPLIT_FILES, data.train, data.val, data.test])
    names = files or [f for f in candidates if (root / f).exists()]
    if not names:
        raise TrashsegError(f"{root}: no COCO split file found (expected one of {', '.join(candidates)})")
    return [check_split(root / name, data, workers) for name in names]


def summarize(reports: list[SplitReport]) -> dict:
    """The JSON report: per split counts, problems by code, and every problem."""
    return {
        "ok": not any(r.count("error") for r in reports),
        "splits": [
            {
                "file": r.file,
                "images": r.images,
                "annotations": r.annotations,
                "errors": r.count("error"),
                "warnings": r.count("warning"),
                "by_code": dict(Counter(p.code for p in r.problems)),
                "problems": [p.to_dict() for p in r.problems],
            }
            for r in reports
        ],
    }
