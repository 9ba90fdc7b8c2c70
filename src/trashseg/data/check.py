"""``trashseg data check``: every mistake a user can make in a dataset, each located by file and id."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from trashseg.data.coco import CocoSplit, Problem, parse_split
from trashseg.data.masks import annotation_rle
from trashseg.errors import TrashsegError

SPLIT_FILES = ("train.json", "val.json", "test.json", "train_all.json")
_ROTATING_EXIF = {5, 6, 7, 8}  # orientations that swap width and height
_CONVERTED_MODES = {"L": "grayscale", "LA": "grayscale+alpha", "RGBA": "RGBA", "P": "palette", "CMYK": "CMYK",
                    "I;16": "16-bit", "I;16B": "16-bit", "I": "32-bit integer", "F": "float"}


@dataclass
class SplitReport:
    file: str
    images: int = 0
    annotations: int = 0
    problems: list[Problem] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(p.severity == severity for p in self.problems)


def _image_problems(split: CocoSplit, image: dict) -> list[Problem]:
    """Open and fully decode one image; compare it with what the JSON says about it."""
    path = split.image_path(image)
    where = dict(file=str(path), image_id=image["id"])
    if not path.is_file():
        return [Problem("error", "missing_image", "image file not found", **where)]
    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            mode, (w, h) = im.mode, im.size
            im.load()  # full decode: catches truncated and corrupt files
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return [Problem("error", "unreadable_image", f"cannot be decoded: {exc}", **where)]
    out = []
    shown = (h, w) if orientation in _ROTATING_EXIF else (w, h)
    declared = (image["width"], image["height"])
    if declared != shown:
        hint = ("; the JSON matches the stored pixels, so the annotations were probably drawn without the EXIF "
                "rotation the loader applies: strip the EXIF orientation tag") if declared == (w, h) else ""
        out.append(Problem("error", "size_mismatch",
                           f"JSON says {declared[0]}x{declared[1]}, the image is {shown[0]}x{shown[1]}{hint}", **where))
    elif orientation != 1:
        out.append(Problem("warning", "exif_rotation", f"EXIF orientation {orientation} is applied when loading",
                           **where))
    if mode in _CONVERTED_MODES:
        out.append(Problem("warning", "image_mode", f"{_CONVERTED_MODES[mode]} image is converted to 8-bit RGB",
                           **where))
    return out


def _annotation_problems(split: CocoSplit) -> list[Problem]:
    images = {img["id"]: img for img in split.images}
    out = []
    for image_id, anns in split.anns_by_image.items():
        img = images.get(image_id)
        if img is None:
            continue  # already reported as a dangling reference
        for ann in anns:
            out += annotation_rle(ann, img["height"], img["width"], str(split.path))[1]
    if split.has_annotations:
        out += [Problem("warning", "no_annotations", "image has no annotations (all background)", str(split.path),
                        img["id"]) for img in split.images if img["id"] not in split.anns_by_image]
    return out


def check_split(path: Path, root: Path, classes: list[str], workers: int = 4) -> SplitReport:
    try:
        split = parse_split(path, root, classes)
    except TrashsegError as exc:
        return SplitReport(str(path), problems=[Problem("error", "unreadable_json", str(exc), str(path))])
    report = SplitReport(str(path), len(split.images), sum(len(a) for a in split.anns_by_image.values()),
                         list(split.problems))
    report.problems += _annotation_problems(split)
    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        for probs in pool.map(lambda img: _image_problems(split, img), split.images):
            report.problems += probs
    return report


def check_dataset(root: str | Path, classes: list[str], files: list[str] | None = None,
                  workers: int = 4) -> list[SplitReport]:
    """Check every split file present under `root` (or the given ones)."""
    root = Path(root)
    if not root.is_dir():
        raise TrashsegError(f"{root}: dataset folder not found")
    names = files or [f for f in SPLIT_FILES if (root / f).exists()]
    if not names:
        raise TrashsegError(f"{root}: no COCO split file found (expected one of {', '.join(SPLIT_FILES)})")
    return [check_split(root / name, root, classes, workers) for name in names]


def summarize(reports: list[SplitReport]) -> dict:
    """The JSON report: per split counts, problems by code, and every problem."""
    return {
        "ok": not any(r.count("error") for r in reports),
        "splits": [{"file": r.file, "images": r.images, "annotations": r.annotations,
                    "errors": r.count("error"), "warnings": r.count("warning"),
                    "by_code": dict(Counter(p.code for p in r.problems)),
                    "problems": [p.to_dict() for p in r.problems]} for r in reports],
    }
