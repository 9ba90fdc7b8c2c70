"""Data in: other tools' labels → the COCO layout that ``data check`` and ``train`` read.

Two sources:
- a folder of PNG class masks beside a folder of images (pixel value = class index, or a colour mask with a
  colour → class map such as CVAT's "Segmentation mask 1.1" export and its ``labelmap.txt``): every connected region
  (8-connected, as ``infer.objects``) of a class becomes one annotation;
- a COCO file from CVAT ("COCO 1.0") or Label Studio ("COCO"): categories remapped onto the class list by name,
  file names found on disk (``images/x.jpg``, ``/data/upload/3/1a2b3c4d-x.jpg``), RLE compressed, missing areas and
  boxes computed, box-only annotations (empty ``segmentation``) left out and counted.

A region becomes polygons when they are faithful: its outline is traced along pixel edges (OpenCV's findContours
on the mask upsampled 2×, corners mapped back), which pycocotools rasterises to exactly the region's pixels; the
result is rasterised and compared, and a region with a hole, or any the polygons miss by a pixel, is stored as
compressed RLE instead. So masks → COCO → ``trashseg.data.masks.rasterize`` gives the input masks back exactly.

Every input is read and checked before anything is written; problems are collected (each naming its file and
field) and raised together as one named error, and the COCO file is written atomically, images linked (or copied)
into the dataset folder first, so a failed conversion leaves no COCO file behind.
"""

from __future__ import annotations

import filecmp
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from trashseg.config import IGNORE_INDEX, MAX_PIXELS
from trashseg.data.coco import read_json
from trashseg.data.images import ImageError, check_pixels
from trashseg.data.masks import annotation_rle, rle_counts_problem
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_link, atomic_write_json
from trashseg.paths import escape
from trashseg.progress import progress_bar

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_LS_UPLOAD = re.compile(r"^/?data/(upload|local-files)/(\d+/)?")  # Label Studio's stored-file prefixes
_LS_HASH = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded names with 8 hex digits


class ConvertError(TrashsegError):
    """Input that cannot be converted; ``problems`` lists every one found, each naming its file and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{len(problems)} problem(s), nothing written:\n" + "\n".join(f"  {p}" for p in problems[:20]) + more
        )


class MaskValueError(ConvertError):
    """A mask pixel holds a value that is no class index (or a colour that the colour map does not name)."""


class SizeMismatch(ConvertError):
    """A mask (or an RLE) and its image differ in size."""


class UnknownCategory(ConvertError):
    """A category (or colour-map label) that the class list does not hold."""


class MissingImageFile(ConvertError):
    """An image (or a mask's image) that is not on disk."""


class OutsideImages(ConvertError):
    """An export's file_name that leads outside the images folder: it is refused, never found and linked in."""


Problems = list[tuple[type[ConvertError], str]]  # (kind, message naming the file and field)


def _raise(problems: Problems) -> None:
    """One error for all problems: of their kind when they share one, else the general ConvertError."""
    if problems:
        kinds = {kind for kind, _ in problems}
        raise (kinds.pop() if len(kinds) == 1 else ConvertError)([text for _, text in problems])


# --------------------------------------------------------------------------------------------- region → COCO


def edge_polygons(region: np.ndarray) -> tuple[list[list[float]], bool]:
    """The outer outlines of a binary region along pixel edges, and whether they are exact: pycocotools rasterises
    them to exactly its pixels (not so for a region with a hole, or an outline that touches itself at a corner)."""
    up = np.kron(region.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(np.uint8)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], False
    polygons, exact = [], not (hierarchy[0, :, 3] >= 0).any()  # a contour with a parent is a hole
    for contour, parent in zip(contours, hierarchy[0, :, 3], strict=True):
        if parent >= 0:
            continue
        corners = (contour.reshape(-1, 2) + 1) // 2  # boundary sub-pixel 2x → edge x, 2x+1 → edge x+1
        corners = corners[np.any(corners != np.roll(corners, 1, axis=0), axis=1)]
        if len(corners) >= 3:
            polygons.append(corners.astype(float).ravel().tolist())
        else:
            exact = False
    if exact:
        h, w = region.shape
        drawn = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w)))
        exact = np.array_equal(drawn.astype(bool), region.astype(bool))
    return polygons, exact


def region_polygons(region: np.ndarray) -> list[list[float]] | None:
    """Polygons that rasterise (pycocotools) to exactly the region's pixels, or None when there are none."""
    polygons, exact = edge_polygons(region)
    return polygons if exact else None


def encode_rle(region: np.ndarray) -> dict:
    """Compressed COCO RLE with a JSON-ready (str) counts string."""
    rle = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def region_annotation(region: np.ndarray, ann_id: int, image_id: int, category_id: int, polygons: bool = True) -> dict:
    """A COCO annotation of a binary region (its own image-sized mask): polygons when faithful, else RLE."""
    ys, xs = np.nonzero(region)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    parts = region_polygons(region[y0:y1, x0:x1]) if polygons else None
    if parts is not None:
        segmentation: list | dict = [[v + (x0 if i % 2 == 0 else y0) for i, v in enumerate(p)] for p in parts]
    else:
        segmentation = encode_rle(region)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "area": float(len(xs)),
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "iscrowd": 0 if parts is not None else 1,
    }  # CVAT reads iscrowd=1 as "a mask in RLE"


def mask_annotations(mask: np.ndarray, image_id: int, first_id: int, polygons: bool = True) -> list[dict]:
    """One annotation per 8-connected region of each non-zero class of a class-id mask; category id = class index
    (the categories `coco_categories` writes)."""
    out: list[dict] = []
    for class_id in np.unique(mask).tolist():
        if class_id == 0:
            continue
        count, labels = cv2.connectedComponents((mask == class_id).astype(np.uint8), connectivity=8)
        for label in range(1, count):
            out.append(region_annotation(labels == label, first_id + len(out), image_id, class_id, polygons))
    return out


def coco_categories(classes: list[str]) -> list[dict]:
    """Categories for a class list: id = class index, background (index 0) left out."""
    return [{"id": i, "name": name, "supercategory": name} for i, name in enumerate(classes) if i > 0]


# ------------------------------------------------------------------------------------------------ class lists


MAX_LIST_BYTES = 1 << 20  # a class list or colour map names at most 255 classes: more bytes than this are no such file


def _read_lines(path: Path, what: str) -> list[str]:
    """The lines of a class list or colour map: at most MAX_LIST_BYTES of UTF-8 text, or a named error."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise TrashsegError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise TrashsegError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(raw) > MAX_LIST_BYTES:
        raise TrashsegError(f"{path}: a {what} is at most {MAX_LIST_BYTES} bytes; this file is larger")
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise TrashsegError(
            f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); save the {what} as UTF-8"
        ) from None


def _check_class_count(count: int, file: str) -> None:
    """Class ids are stored as uint8 with 255 meaning "ignore" (as ``data.classes`` allows)."""
    if count > IGNORE_INDEX:
        raise TrashsegError(
            f"{file}: {count} classes; masks hold at most {IGNORE_INDEX} (class ids are 8-bit, {IGNORE_INDEX} = ignore)"
        )


def read_class_list(path: Path) -> list[str]:
    """A class list file: one name per line, index 0 (the first) the background; blank and ``#`` lines skipped."""
    lines = _read_lines(path, "class list")
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(names) < 2 or len(set(names)) != len(names):
        raise TrashsegError(f"{path}: a class list needs at least 2 distinct names, one per line (background first)")
    _check_class_count(len(names), str(path))
    return names


def read_labelmap(path: Path) -> dict[tuple[int, int, int], str]:
    """CVAT's labelmap.txt (``name:r,g,b:parts:actions`` per line) as colour → label name."""
    colours: dict[tuple[int, int, int], str] = {}
    for number, line in enumerate(_read_lines(path, "colour map"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            rgb = tuple(int(v) for v in rest.split(":")[0].split(","))
        except ValueError:
            rgb = ()
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            shown = line if len(line) <= 100 else line[:100] + "..."
            raise TrashsegError(f"{path}:{number}: expected 'name:r,g,b::', got {shown!r}")
        colours[rgb] = name.strip()
    if not colours:
        raise TrashsegError(f"{path}: no 'name:r,g,b::' line")
    _check_class_count(len({n.lower() for n in colours.values()} | {"background"}), str(path))
    return colours


def colour_classes(
    colours: dict[tuple[int, int, int], str], classes: list[str], file: str
) -> dict[tuple[int, int, int], int]:
    """Colour → class index; the map's ``background`` (any case) is index 0 whatever the class list calls it."""
    index = {name.lower(): i for i, name in enumerate(classes)}
    out: dict[tuple[int, int, int], int] = {}
    unknown: list[str] = []
    for rgb, name in colours.items():
        key = name.lower()
        if key in index or key == "background":
            out[rgb] = index.get(key, 0)
        else:
            unknown.append(name)
    if unknown:
        _raise([(UnknownCategory, f"{file}: labels {unknown} are not in the class list {classes}; give --classes")])
    return out


# ------------------------------------------------------------------------------------------- writing a dataset


@dataclass
class Conversion:
    """What a conversion wrote, for the CLI to print."""

    out: Path
    images: int = 0
    annotations: int = 0
    polygons: int = 0
    rle: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "file": str(self.out),
            "images": self.images,
            "annotations": self.annotations,
            "polygons": self.polygons,
            "rle": self.rle,
            "notes": self.notes,
        }


def _placed_name(image: Path, source_root: Path, dataset: Path) -> tuple[str, Path | None]:
    """The image's file_name in the dataset, and where to link it from when it is not inside the dataset yet."""
    resolved = image.resolve()
    if resolved.is_relative_to(dataset.resolve()):
        return resolved.relative_to(dataset.resolve()).as_posix(), None
    try:
        rel = resolved.relative_to(source_root.resolve()).as_posix()
    except ValueError:
        rel = image.name
    return f"images/{rel}", resolved


def _write_dataset(
    out: Path, images: list[dict], anns: list[dict], classes: list[str], links: list[tuple[Path, Path]], info: dict
) -> Conversion:
    """Validate every annotation against its image with the loader's own rules, then link images and write."""
    sizes = {img["id"]: (img["height"], img["width"], img["file_name"]) for img in images}
    problems = Problems()
    for ann in anns:
        h, w, name = sizes[ann["image_id"]]
        problems += [
            (ConvertError, f"{name}: annotation {ann['id']}: {p.message}")
            for p in annotation_rle(ann, h, w, str(out))[1]
            if p.severity == "error"
        ]
    _raise(problems + _link_problems(links))
    for dst, src in links:
        if not dst.exists():
            atomic_link(src, dst)
    atomic_write_json(
        out, {"info": info, "images": images, "annotations": anns, "categories": coco_categories(classes)}
    )
    rle = sum(isinstance(a["segmentation"], dict) for a in anns)
    return Conversion(out, len(images), len(anns), len(anns) - rle, rle)


def _link_problems(links: list[tuple[Path, Path]]) -> Problems:
    """Two images that would land on one name, or a different file already there: either would silently pair
    an annotation with the wrong picture."""
    problems, placed = Problems(), dict[Path, Path]()
    for dst, src in links:
        if placed.setdefault(dst, src) != src:
            problems.append(
                (
                    ConvertError,
                    f"{src} and {placed[dst]} would both become {dst}; give --images the folder that holds them both",
                )
            )
        elif dst.exists() and not (os.path.samefile(dst, src) or filecmp.cmp(dst, src, shallow=False)):
            problems.append(
                (ConvertError, f"{dst} already exists and differs from {src}; remove it or convert into another folder")
            )
    return problems


def _dataset_image(
    image: Path,
    source_root: Path,
    dataset: Path,
    image_id: int,
    height: int,
    width: int,
    links: list[tuple[Path, Path]],
) -> dict:
    name, src = _placed_name(image, source_root, dataset)
    if src is not None:
        links.append((dataset / name, src))
    return {"id": image_id, "file_name": name, "height": height, "width": width}


# --------------------------------------------------------------------------------------------- masks → COCO


def _find_image(images_dir: Path, rel_mask: Path) -> Path | None:
    """The image beside a mask: the same relative path with an image suffix."""
    stem = images_dir / rel_mask.with_suffix("")
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        if (candidate := stem.with_name(stem.name + suffix)).is_file():
            return candidate
    return None


def _read_mask(
    path: Path, num_classes: int, colours: dict[tuple[int, int, int], int] | None, max_pixels: int
) -> tuple[np.ndarray | None, str | None]:
    """(class-id mask, None) or (None, why not). Without `colours` a grayscale PNG's values, or a palette PNG's
    indices (VOC's convention), are the class ids; with them, the RGB colour of each pixel is looked up."""
    try:
        check_pixels(path, str(path), max_pixels)
        with Image.open(path) as im:
            if colours is None and im.mode not in ("L", "P"):
                return None, (
                    f"{path}: a class mask must be 8-bit grayscale or a palette PNG (pixel = class index), "
                    f"this one is {im.mode}; for colour masks give --colours labelmap.txt"
                )
            raw = np.array(im if colours is None else im.convert("RGB"))
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise many types on broken files; name the file
        return None, f"{path}: not a readable PNG ({exc})"
    if colours is None:
        if (top := int(raw.max())) >= num_classes:
            count = int((raw >= num_classes).sum())
            return None, (
                f"{path}: pixel value {top} ({count} pixels >= {num_classes}) is not a class index of the "
                f"{num_classes} classes"
            )
        return raw, None
    rgb = raw.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    known = {(r << 16) | (g << 8) | b: c for (r, g, b), c in colours.items()}
    values, inverse = np.unique(packed, return_inverse=True)
    strange = [v for v in values.tolist() if v not in known]
    if strange:
        shown = [(v >> 16, (v >> 8) & 255, v & 255) for v in strange[:5]]
        return None, f"{path}: colours {shown} are not in the colour map"
    lut = np.array([known[v] for v in values.tolist()], np.uint8)
    return lut[inverse].reshape(packed.shape), None


def masks_to_coco(
    masks_dir: Path,
    images_dir: Path,
    classes: list[str],
    out: Path,
    *,
    colours: dict[tuple[int, int, int], str] | None = None,
    polygons: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> Conversion:
    """A folder of PNG masks (class ids, or colours with `colours`) + their images → a COCO file `out` in the
    dataset folder `out.parent` (images outside it are linked in under ``images/``)."""
    mask_files = sorted(p for p in masks_dir.rglob("*.png") if not p.name.startswith("."))
    if not mask_files:
        raise TrashsegError(f"{masks_dir}: no .png masks found")
    _check_class_count(len(classes), "the class list")
    lut = colour_classes(colours, classes, str(masks_dir)) if colours else None
    dataset, problems = out.parent, Problems()
    images: list[dict] = []
    anns: list[dict] = []
    links: list[tuple[Path, Path]] = []
    with progress_bar() as bar:
        task = bar.add_task("convert: masks", total=len(mask_files), rate="-")
        for path in mask_files:
            bar.update(task, advance=1)
            rel = path.relative_to(masks_dir)
            image = _find_image(images_dir, rel)
            if image is None:
                problems.append(
                    (
                        MissingImageFile,
                        f"{path}: no image {images_dir / rel.with_suffix('')}.* ({'/'.join(IMAGE_SUFFIXES)})",
                    )
                )
                continue
            mask, why = _read_mask(path, len(classes), lut, max_pixels)
            if mask is None:
                problems.append((MaskValueError, str(why)))
                continue
            try:
                width, height = check_pixels(image, str(image), max_pixels)
            except ImageError as exc:
                problems.append((ConvertError, str(exc)))
                continue
            if mask.shape != (height, width):
                problems.append(
                    (
                        SizeMismatch,
                        f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image {image} is {width}x{height}",
                    )
                )
                continue
            image_id = len(images) + 1
            images.append(_dataset_image(image, images_dir, dataset, image_id, height, width, links))
            anns += mask_annotations(mask, image_id, len(anns) + 1, polygons)
    _raise(problems)
    return _write_dataset(out, images, anns, classes, links, {"description": f"trashseg convert masks {masks_dir}"})


# --------------------------------------------------------------------------------- CVAT / Label Studio COCO


def _tool_name(file_name: str) -> str:
    """The file_name without Label Studio's stored-file prefix (``/data/upload/3/``): the only absolute-looking
    names a tool writes that still name a file under the images folder."""
    return _LS_UPLOAD.sub("", file_name.lstrip("/")) if file_name.startswith(("/data/", "data/")) else file_name


def _name_candidates(file_name: str) -> list[str]:
    """Where a tool's file_name may be on disk, relative to an images folder, most literal first."""
    stripped = _tool_name(file_name)
    names = [file_name.lstrip("/"), stripped]
    for prefix in ("images/", "JPEGImages/"):
        if stripped.startswith(prefix):
            names.append(stripped[len(prefix) :])
    base = Path(stripped).name
    names += [base, _LS_HASH.sub("", base)]
    return list(dict.fromkeys(n for n in names if n))


def _locate(file_name: str, roots: list[Path], allow_links: bool) -> tuple[Path | None, str | None]:
    """(the file, None), (None, None) when it is not found, or (None, why) when the name leads outside the images
    folder: absolute (but for Label Studio's prefix), a ``..`` part, or a symbolic link out (see trashseg.paths)."""
    if found := escape(roots[0], _tool_name(file_name), allow_links=True):  # the name as given: absolute, ".."
        return None, found[1]
    for root in roots:
        for name in _name_candidates(file_name):
            found = escape(root, name, allow_links)
            if found and found[0] == "bad_file_name":  # is_file would raise on it
                return None, found[1]
            if (candidate := root / name).is_file():
                return (None, found[1]) if found else (candidate, None)
    return None, None


def _category_map(categories: list[dict], classes: list[str], file: str) -> dict[int, int]:
    """Export category id → class index, by name (exact, then ignoring case); unknown names are an error."""
    exact = {name: i for i, name in enumerate(classes)}
    folded = {name.lower(): i for i, name in enumerate(classes)}
    out, unknown = {}, []
    for k, cat in enumerate(categories):
        name = cat.get("name") if isinstance(cat, dict) else None
        if not isinstance(name, str) or not isinstance(cat.get("id"), int):
            unknown.append(f"categories[{k}] (no integer id / string name)")
        elif (index := exact.get(name, folded.get(name.lower()))) is not None and index > 0:
            out[cat["id"]] = index
        else:
            unknown.append(repr(name))
    if unknown:
        _raise(
            [
                (
                    UnknownCategory,
                    f"{file}: categories {', '.join(unknown)} are not object classes of {classes}; "
                    "give the class list with --classes FILE (or --own-classes)",
                )
            ]
        )
    return out


def _segmentation(ann: dict, h: int, w: int) -> list | dict | None:
    """The annotation's segmentation normalised: polygon parts as they are, any RLE compressed; None when empty."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        counts = seg.get("counts")
        if isinstance(counts, list):  # uncompressed (CVAT's iscrowd masks): compress as pycocotools does
            if seg.get("size") != [h, w] or rle_counts_problem(seg, h, w):
                return seg  # left for the loader's checks, which name it (pycocotools would raise on it)
            rle = mask_utils.frPyObjects(seg, h, w)
            return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        return seg
    if isinstance(seg, list):
        parts = [p for p in seg if isinstance(p, list) and p]
        return parts or None
    return None


def own_classes(export: Path) -> list[str]:
    """An export's own class list: "Background" then its categories' names in id order."""
    data = read_json(export)
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise TrashsegError(f"{export}: no 'categories' list to take the classes from")
    usable = [c for c in cats if isinstance(c, dict) and type(c.get("id")) is int and isinstance(c.get("name"), str)]
    names = [c["name"] for c in sorted(usable, key=lambda c: c["id"])]  # the others: named by _category_map
    return ["Background"] + [n for n in dict.fromkeys(names) if n.lower() != "background"]


def normalise_coco(
    export: Path,
    classes: list[str],
    out: Path,
    *,
    images_dir: Path | None = None,
    max_pixels: int = MAX_PIXELS,
    allow_links: bool = False,
    strict: bool = False,
) -> Conversion:
    """A CVAT / Label Studio COCO export → a COCO file `out` that trashseg reads (see the module doc); a file_name
    that leads outside the images folder is refused (`allow_links`: data.allow_external_links). An annotation that
    covers no pixel (a sliver a tool exported) is left out and named in the notes, the rest written; `strict`
    refuses the export for it instead."""
    data = read_json(export)
    file = str(export)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise TrashsegError(f"{export}: not a COCO file (needs 'images' and 'categories' lists)")
    if not isinstance(data.get("annotations", []), list):
        raise TrashsegError(f"{export}: 'annotations' must be a list, not {type(data['annotations']).__name__}")
    cat_map = _category_map(data["categories"], classes, file)
    roots = (
        [images_dir]
        if images_dir
        else [export.parent, export.parent.parent, export.parent / "images", export.parent.parent / "images"]
    )
    dataset, problems = out.parent, Problems()
    images: list[dict] = []
    links: list[tuple[Path, Path]] = []
    new_id: dict[int, int] = {}
    listed: dict[Path, str] = {}  # each file once: two entries of one file would make one file_name twice
    for k, img in enumerate(data["images"]):
        where = f"{file}: images[{k}]"
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str) or "id" not in img:
            problems.append((ConvertError, f"{where}: needs an 'id' and a 'file_name'"))
            continue
        found, outside = _locate(img["file_name"], roots, allow_links)
        if outside is not None:
            problems.append(
                (
                    OutsideImages,
                    f"{where} (id {img['id']}): {outside}: refused (a file_name must be a path inside the "
                    "images folder, without '..'; --set data.allow_external_links=true follows links out)",
                )
            )
            continue
        if found is None:
            problems.append(
                (
                    MissingImageFile,
                    f"{where} (id {img['id']}): file_name {img['file_name']!r} not found "
                    f"under {', '.join(str(r) for r in roots)}; give --images DIR",
                )
            )
            continue
        entry = f"images[{k}] (id {img['id']})"
        if (first := listed.setdefault(found.resolve(), entry)) != entry:
            problems.append((ConvertError, f"{file}: {entry}: {found} is {first} too; list each image once"))
            continue
        try:
            width, height = check_pixels(found, str(found), max_pixels)
        except ImageError as exc:
            problems.append((ConvertError, f"{where}: {exc}"))
            continue
        if (img.get("width"), img.get("height")) not in ((width, height), (None, None)):
            problems.append(
                (
                    SizeMismatch,
                    f"{where} (id {img['id']}): JSON says {img.get('width')}x"
                    f"{img.get('height')}, {found} is {width}x{height}",
                )
            )
            continue
        new_id[img["id"]] = len(images) + 1
        images.append(
            _dataset_image(
                found, roots[0] if images_dir else found.parent, dataset, len(images) + 1, height, width, links
            )
        )
    _raise(problems)
    anns, dropped, slivers = _normalised_annotations(data.get("annotations", []), cat_map, new_id, images, file, strict)
    conversion = _write_dataset(out, images, anns, classes, links, {"description": f"trashseg convert coco {export}"})
    if dropped:
        conversion.notes.append(f"{dropped} annotation(s) with an empty segmentation (boxes) left out")
    if slivers:
        conversion.notes.append(f"{len(slivers)} annotation(s) that cover no pixel left out (--strict refuses them):")
        conversion.notes += slivers
    return conversion


def _listed(key: object, table: dict[int, int]) -> bool:
    """Whether an id from the export is one of `table`'s (a list or a mapping there is no id at all)."""
    return isinstance(key, int | str | float) and key in table


# What a tool's export may hold that no pixel of the mask needs: left out and named unless --strict
_NO_PIXELS = {"zero_area", "degenerate"}


def _normalised_annotations(
    raw: list, cat_map: dict[int, int], new_id: dict[int, int], images: list[dict], file: str, strict: bool
) -> tuple[list[dict], int, list[str]]:
    """The annotations in trashseg's form, the count of empty ones (boxes), and the slivers left out (named)."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in images}
    anns: list[dict] = []
    slivers: list[str] = []
    dropped, problems = 0, Problems()
    for k, ann in enumerate(raw):
        where = f"{file}: annotations[{k}]"
        if (
            not isinstance(ann, dict)
            or not _listed(ann.get("image_id"), new_id)
            or not _listed(ann.get("category_id"), cat_map)
        ):
            what = (
                "is not an object"
                if not isinstance(ann, dict)
                else f"image_id {ann.get('image_id')!r} is not an image"
                if not _listed(ann.get("image_id"), new_id)
                else f"category_id {ann.get('category_id')!r} is not a category"
            )
            problems.append((UnknownCategory if "category" in what else ConvertError, f"{where}: {what}"))
            continue
        image_id = new_id[ann["image_id"]]
        h, w = sizes[image_id]
        seg = _segmentation(ann, h, w)
        if seg is None:
            dropped += 1
            continue
        out: dict[str, Any] = {
            "id": len(anns) + 1,
            "image_id": image_id,
            "category_id": cat_map[ann["category_id"]],
            "segmentation": seg,
            "iscrowd": int(isinstance(seg, dict)),
        }
        rle, found = annotation_rle(out, h, w, file)
        errors = [p.message for p in found if p.severity == "error"]
        if rle is None and not strict and {p.code for p in found if p.severity == "error"} <= _NO_PIXELS:
            slivers.append(f"  {where} (id {ann.get('id')}): {'; '.join(errors)}")  # nothing of it to keep
            continue
        if rle is None or errors:
            kind = SizeMismatch if any(p.code == "rle_size" for p in found) else ConvertError
            problems.append((kind, f"{where} (id {ann.get('id')}): {'; '.join(errors)}"))
            continue
        out["area"] = float(mask_utils.area(rle))
        out["bbox"] = [float(v) for v in mask_utils.toBbox(rle)]
        anns.append(out)
    _raise(problems)
    return anns, dropped, slivers
