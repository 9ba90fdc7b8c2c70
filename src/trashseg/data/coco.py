"""Reading a COCO split and mapping its categories onto the configured class list by name.

Parsing is done by hand (json + small checks) rather than through ``pycocotools.coco.COCO`` because COCO's
index silently keeps the last of two duplicate ids and never says which file or id is wrong; every problem
here is collected with the file, image id and annotation id so that ``trashseg data check`` can list them all.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trashseg.config import MAX_PIXELS, DataConfig
from trashseg.data.images import read_image
from trashseg.errors import TrashsegError
from trashseg.paths import escape


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, located precisely enough to fix it by hand."""

    severity: str  # "error" (cannot be used as is) or "warning" (handled by a stated policy)
    code: str
    message: str
    file: str = ""
    image_id: int | None = None
    ann_id: int | None = None

    def __str__(self) -> str:
        where = [self.file] if self.file else []
        if self.image_id is not None:
            where.append(f"image_id={self.image_id}")
        if self.ann_id is not None:
            where.append(f"ann_id={self.ann_id}")
        return f"{self.severity}: {' '.join(where)}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CocoSplit:
    """A validated split: images in file order, annotations grouped by image, category id → class index."""

    path: Path
    root: Path
    classes: list[str]
    images: list[dict]
    anns_by_image: dict[int, list[dict]]
    cat_to_class: dict[int, int]
    has_annotations: bool
    problems: list[Problem] = field(default_factory=list)
    max_pixels: int = MAX_PIXELS  # data.max_pixels: what readers of this split's images pass to read_image
    allow_external_links: bool = False  # data.allow_external_links
    exif_orientation: bool = False  # info.orientation == "exif": raw photos listed by `predict --images`

    @property
    def name(self) -> str:
        return self.path.name

    def path_problem(self, image: dict) -> Problem | None:
        """An error when the image's file_name leads outside the dataset root (see trashseg.paths)."""
        found = escape(self.root, image["file_name"], self.allow_external_links)
        if found is None:
            return None
        code, text = found
        fix = (
            "; pass --set data.allow_external_links=true if the link is meant"
            if code == "external_link"
            else "; file_name must be a path relative to the dataset folder"
        )
        return Problem("error", code, text + fix, str(self.path), image["id"])

    def image_path(self, image: dict) -> Path:
        """The image's file, refused (TrashsegError) when it is not inside the dataset root."""
        if problem := self.path_problem(image):
            raise TrashsegError(str(problem))
        return self.root / image["file_name"]

    def load_image(self, image: dict) -> np.ndarray:
        """The image's pixels as this split's readers see them (uint8 RGB; upright for `exif_orientation`)."""
        return read_image(self.image_path(image), self.max_pixels, self.exif_orientation)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _schema_problems(data: Any, file: str, require_annotations: bool) -> list[Problem]:
    """Structural checks: anything failing here makes the rest of the file unreadable."""
    if not isinstance(data, dict):
        return [Problem("error", "schema", f"top level must be an object, got {type(data).__name__}", file)]
    out = []
    keys = ["images", "categories"] + (["annotations"] if require_annotations else [])
    for key in keys:
        if key not in data:
            out.append(Problem("error", "schema", f"missing top-level key '{key}'", file))
        elif not isinstance(data[key], list):
            out.append(Problem("error", "schema", f"'{key}' must be a list", file))
    if not require_annotations and "annotations" in data and not isinstance(data["annotations"], list):
        out.append(Problem("error", "schema", "'annotations' must be a list", file))
    if out:
        return out
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict):
            out.append(Problem("error", "schema", f"images[{i}] is not an object", file))
            continue
        iid = img.get("id") if _is_int(img.get("id")) else None
        for key, ok in (
            ("id", _is_int),
            ("file_name", lambda v: isinstance(v, str) and v),
            ("height", lambda v: _is_int(v) and v > 0),
            ("width", lambda v: _is_int(v) and v > 0),
        ):
            if not ok(img.get(key)):
                out.append(
                    Problem("error", "schema", f"images[{i}].{key} missing or invalid: {img.get(key)!r}", file, iid)
                )
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            out.append(Problem("error", "schema", f"categories[{i}] needs an integer 'id' and a string 'name'", file))
    for i, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict):
            out.append(Problem("error", "schema", f"annotations[{i}] is not an object", file))
            continue
        aid = ann.get("id") if _is_int(ann.get("id")) else None
        for key in ("id", "image_id", "category_id"):
            if not _is_int(ann.get(key)):
                out.append(
                    Problem(
                        "error",
                        "schema",
                        f"annotations[{i}].{key} missing or not an integer",
                        file,
                        ann.get("image_id") if _is_int(ann.get("image_id")) else None,
                        aid,
                    )
                )
        if not isinstance(ann.get("segmentation"), (list, dict)):
            out.append(
                Problem(
                    "error",
                    "schema",
                    "segmentation missing or not a polygon list / RLE object",
                    file,
                    ann.get("image_id") if _is_int(ann.get("image_id")) else None,
                    aid,
                )
            )
        area = ann.get("area", 0)
        if not isinstance(area, (int, float)) or isinstance(area, bool) or math.isnan(area):
            out.append(Problem("error", "schema", f"area is not a number: {area!r}", file, ann.get("image_id"), aid))
    return out


def _duplicates(items: list[dict], key: str, what: str, file: str) -> list[Problem]:
    """Duplicate ids make COCO look-ups ambiguous; report every repeat, not only the first."""
    seen: set[Any] = set()
    out = []
    for item in items:
        if item[key] in seen:
            is_ann = what == "annotation id"
            image_id = item["image_id"] if is_ann else (item["id"] if what != "category id" else None)
            out.append(
                Problem(
                    "error",
                    "duplicate",
                    f"duplicate {what} {item[key]!r}",
                    file,
                    image_id,
                    item["id"] if is_ann else None,
                )
            )
        seen.add(item[key])
    return out


def _reference_problems(data: dict, file: str, classes: list[str]) -> tuple[list[Problem], dict[int, int]]:
    out = _duplicates(data["images"], "id", "image id", file)
    out += _duplicates(data["images"], "file_name", "file_name", file)
    out += _duplicates(data["categories"], "id", "category id", file)
    out += _duplicates(data.get("annotations", []), "id", "annotation id", file)
    class_index = {name: i for i, name in enumerate(classes)}
    cat_to_class: dict[int, int] = {}
    unknown = []
    for cat in data["categories"]:
        if cat["name"] in class_index:
            cat_to_class[cat["id"]] = class_index[cat["name"]]
        else:
            unknown.append(cat["name"])
    if unknown:
        out.append(
            Problem(
                "error",
                "unknown_category",
                f"categories {unknown} are not in the configured class list {classes}; "
                "give the dataset's classes in a config's data.classes "
                "(-c CONFIG or --set data.classes=[...])",
                file,
            )
        )
    image_ids = {img["id"] for img in data["images"]}
    cat_ids = {cat["id"] for cat in data["categories"]}
    for ann in data.get("annotations", []):
        if ann["image_id"] not in image_ids:
            out.append(
                Problem(
                    "error",
                    "missing_image_ref",
                    "annotation points at an image id not in 'images'",
                    file,
                    ann["image_id"],
                    ann["id"],
                )
            )
        if ann["category_id"] not in cat_ids:
            out.append(
                Problem(
                    "error",
                    "missing_category_ref",
                    f"annotation points at category id {ann['category_id']} not in 'categories'",
                    file,
                    ann["image_id"],
                    ann["id"],
                )
            )
    return out, cat_to_class


def read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise TrashsegError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrashsegError(f"{path}: not valid JSON ({exc})") from None


def parse_split(
    path: str | Path,
    root: str | Path,
    classes: list[str],
    *,
    require_annotations: bool = False,
    max_pixels: int = MAX_PIXELS,
    allow_external_links: bool = False,
) -> CocoSplit:
    """Parse and cross-check a COCO file. Problems are attached, not raised; see :func:`load_split`."""
    path = Path(path)
    data = read_json(path)
    file = str(path)
    problems = _schema_problems(data, file, require_annotations)
    if problems:
        raise TrashsegError(f"{path}: not a usable COCO file:\n" + "\n".join(f"  {p}" for p in problems[:20]))
    ref_problems, cat_to_class = _reference_problems(data, file, classes)
    anns_by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in data.get("annotations", []):
        anns_by_image[ann["image_id"]].append(ann)
    split = CocoSplit(
        path=path,
        root=Path(root),
        classes=list(classes),
        images=data["images"],
        anns_by_image=dict(anns_by_image),
        cat_to_class=cat_to_class,
        has_annotations="annotations" in data,
        problems=ref_problems,
        max_pixels=max_pixels,
        allow_external_links=allow_external_links,
        exif_orientation=isinstance(data.get("info"), dict) and data["info"].get("orientation") == "exif",
    )
    split.problems += [p for img in split.images if (p := split.path_problem(img))]
    return split


def load_split(
    path: str | Path,
    root: str | Path,
    classes: list[str],
    *,
    require_annotations: bool = False,
    max_pixels: int = MAX_PIXELS,
    allow_external_links: bool = False,
) -> CocoSplit:
    """Parse a split for use: any error-level problem is raised, naming the file and ids."""
    split = parse_split(
        path,
        root,
        classes,
        require_annotations=require_annotations,
        max_pixels=max_pixels,
        allow_external_links=allow_external_links,
    )
    errors = [p for p in split.problems if p.severity == "error"]
    if errors:
        more = f"\n  ... and {len(errors) - 10} more (run `trashseg data check`)" if len(errors) > 10 else ""
        raise TrashsegError(f"{path}: {len(errors)} error(s):\n" + "\n".join(f"  {p}" for p in errors[:10]) + more)
    return split


def split_files(root: Path) -> list[str]:
    """The COCO files a dataset root holds (its top level and the folds folder), as a user would name them."""
    found = [*root.glob("*.json"), *root.glob("*/*.json")]
    return sorted(p.relative_to(root).as_posix() for p in found if p.is_file())


def find_split(data: DataConfig, split: str) -> Path:
    """The file a split name means: ``train``/``val``/``test`` the configured files, anything else a file under
    the root, with or without ``.json`` (``--split holdout`` finds ``holdout.json``). A name that matches no file
    is an error that lists the COCO files there are, so a typo shows what was meant."""
    path = data.split_path(split)
    if path.is_file():
        return path
    with_suffix = path.with_name(f"{path.name}.json")
    if path.suffix != ".json" and with_suffix.is_file():
        return with_suffix
    root = data.root_dir()
    there = split_files(root) if root.is_dir() else []
    listing = f"COCO files under {root}: {', '.join(there)}" if there else f"no COCO (.json) file under {root}"
    raise TrashsegError(f"split {split!r}: {path} not found; {listing}")


def default_source(data: DataConfig) -> str:
    """What ``trashseg split`` divides when no --source is given: the configured train file, or else the one COCO
    file at the root (the seed's ``train_all.json``, a single converted export); several are listed instead."""
    if data.split_path("train").is_file():
        return "train"
    root = data.root_dir()
    if not root.is_dir():
        raise TrashsegError(f"{root}: no such dataset folder")
    top = sorted(p.name for p in root.glob("*.json") if p.is_file())
    if len(top) == 1:
        return top[0]
    listing = ", ".join(top) if top else "none"
    raise TrashsegError(
        f"{data.split_path('train')}: not found, and {root} holds {len(top)} COCO files at its top level "
        f"({listing}); name the one to divide with --source"
    )


def load_named_split(data: DataConfig, split: str, require_annotations: bool = False) -> CocoSplit:
    """The split a config names (``train``/``val``/``test`` or a file under the root), loaded for use."""
    return load_split(
        find_split(data, split),
        data.root_dir(),
        data.classes,
        require_annotations=require_annotations,
        max_pixels=data.max_pixels,
        allow_external_links=data.allow_external_links,
    )
