"""``trashseg eda``: what is in a split, per class, in one HTML page and one JSON of the numbers.

The questions the seed team answered in notebooks: how rare is each class (objects, images, pixels), how many
objects share an image, how small and how thin they are (strings and ropes are thin: little area for their
bounding box, and lost to background first), which classes occur together (label confusions hide there), what
sizes and brightness the images have, and what each class looks like (a row of examples with the masks drawn).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from trashseg.analysis.html import Page
from trashseg.data.coco import CocoSplit
from trashseg.data.images import read_image
from trashseg.data.masks import MaskCache, annotation_rle
from trashseg.data.stats import ClassStats, class_stats
from trashseg.draw import blend, class_colors, figure, label_cells, plain
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, make_folder
from trashseg.progress import progress_bar

# COCO's object-size buckets (area in pixels at the image's own size).
SIZE_BUCKETS: tuple[tuple[str, float], ...] = (("small <32²", 32**2), ("medium <96²", 96**2), ("large", np.inf))
THIN_FILL = 0.3  # an object covering less than this share of its bounding box counts as thin
EXAMPLES = 6  # per class in the example grid
TILE = 128


def size_bucket(area: float) -> str:
    return next(name for name, limit in SIZE_BUCKETS if area < limit)


@dataclass
class ObjectRow:
    """One annotation as drawn: its class, image, area and bounding box (x, y, w, h) in pixels."""

    image_index: int
    ann_id: int
    cls: int
    area: float
    bbox: tuple[float, float, float, float]

    @property
    def fill(self) -> float:
        return self.area / max(1.0, self.bbox[2] * self.bbox[3])


def object_rows(split: CocoSplit) -> list[ObjectRow]:
    """Every annotation the mask loader would draw (degenerate ones are skipped, as it skips them)."""
    rows = []
    for n, img in enumerate(split.images):
        for ann in split.anns_by_image.get(img["id"], []):
            rle, _ = annotation_rle(ann, img["height"], img["width"], str(split.path))
            if rle is not None:
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                rows.append(
                    ObjectRow(
                        n, ann["id"], split.cat_to_class[ann["category_id"]], float(mask_utils.area(rle)), (x, y, w, h)
                    )
                )
    return rows


def image_brightness(split: CocoSplit) -> np.ndarray:
    """Mean grey level (0–255) of every image; decoding every image is the slow part of the EDA, so it shows
    progress."""
    out = np.zeros(len(split.images))
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"images of {split.name}", total=len(split.images), rate="-")
        for n, img in enumerate(split.images):
            out[n] = cv2.cvtColor(read_image(split.image_path(img), split.max_pixels), cv2.COLOR_RGB2GRAY).mean()
            bar.update(task, advance=1, rate=f"{(n + 1) / (time.perf_counter() - start):.0f}")
    return out


def summarize(split: CocoSplit, stats: ClassStats, objects: list[ObjectRow], brightness: np.ndarray) -> dict:
    """The numbers of the report (also its JSON)."""
    classes = split.classes
    per_class = {}
    for c, name in enumerate(classes):
        rows = [o for o in objects if o.cls == c]
        areas = np.array([o.area for o in rows])
        per_class[name] = {
            "objects": len(rows),
            "images": int(stats.presence[:, c].sum()),
            "images_with_object": len({o.image_index for o in rows}),
            "pixel_share": float(stats.shares[c]),
            "median_area": round(float(np.median(areas))) if len(rows) else None,
            "thin": sum(o.fill < THIN_FILL for o in rows),
            "sizes": {name_: sum(size_bucket(o.area) == name_ for o in rows) for name_, _ in SIZE_BUCKETS},
        }
    per_image = np.bincount([o.image_index for o in objects], minlength=len(split.images))
    sizes: dict[str, int] = {}
    for img in split.images:
        key = f"{img['width']}x{img['height']}"
        sizes[key] = sizes.get(key, 0) + 1
    presence = stats.presence.astype(np.int64)
    return {
        "split": str(split.path),
        "images": len(split.images),
        "objects": len(objects),
        "thin_fill_threshold": THIN_FILL,
        "per_class": per_class,
        "objects_per_image": {
            "mean": float(per_image.mean()) if len(per_image) else 0.0,
            "max": int(per_image.max()) if len(per_image) else 0,
            "histogram": np.bincount(per_image).tolist(),
        },
        "images_without_objects": int((per_image == 0).sum()),
        "image_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "brightness": {
            "mean": float(brightness.mean()),
            "p5": float(np.percentile(brightness, 5)),
            "p95": float(np.percentile(brightness, 95)),
        }
        if len(brightness)
        else {},
        "cooccurrence": {"classes": classes, "images": (presence.T @ presence).tolist()},
    }


def _bars(panels: list[tuple[list[str], list[float], str, bool, str]]):
    """Bar charts side by side: (classes, values, title, log scale, colour) per panel."""
    width = sum(max(3.5, 0.3 * len(p[0])) for p in panels)
    fig, axes = figure(1, len(panels), figsize=(width, 3.4), squeeze=False)
    for ax, (classes, values, title, log, color) in zip(axes[0], panels, strict=True):
        ax.bar(range(len(classes)), values, color=color)
        ax.set_xticks(range(len(classes)), [plain(c) for c in classes], rotation=60, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


def _size_figure(objects: list[ObjectRow], classes: list[str]):
    fig, (left, right) = figure(1, 2, figsize=(12, 3.6))
    data = [[o.area for o in objects if o.cls == c] or [np.nan] for c in range(1, len(classes))]
    left.boxplot(data, showfliers=False)
    left.set_yscale("log")
    left.set_xticks(range(1, len(classes)), [plain(c) for c in classes[1:]], rotation=60, ha="right", fontsize=8)
    left.set_title("object area (pixels, log; whiskers 1.5 IQR)", fontsize=10)
    fills = [o.fill for o in objects]
    right.hist(fills, bins=40, range=(0, 1), color="tab:gray")
    right.axvline(THIN_FILL, color="tab:red", ls="--", label=f"thin: < {THIN_FILL} of its box")
    right.set_title("area / bounding-box area", fontsize=10)
    right.legend(fontsize=8)
    return fig


def _cooccurrence_figure(matrix: np.ndarray, classes: list[str]):
    """Share of the images holding the row class that also hold the column class."""
    n = len(classes) - 1
    m = matrix[1:, 1:].astype(float)
    diag = np.diag(m).copy()
    share = np.divide(m, diag[:, None], out=np.zeros_like(m), where=diag[:, None] > 0)
    fig, ax = figure(figsize=(1.5 + 0.5 * n, 1.0 + 0.45 * n))
    ax.imshow(share, cmap="Purples", vmin=0, vmax=1)
    label_cells(ax, share, {(i, j): f"{int(m[i, j])}" for i in range(n) for j in range(n) if i != j and m[i, j]}, 6)
    ax.set_xticks(range(n), [plain(c) for c in classes[1:]], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{plain(c)} ({int(d)})" for c, d in zip(classes[1:], diag, strict=True)], fontsize=8)
    ax.set_title("co-occurrence: images with both (colour: share of the row class's images)", fontsize=9)
    return fig


def _images_figure(split: CocoSplit, objects: list[ObjectRow], brightness: np.ndarray):
    fig, (a, b) = figure(1, 2, figsize=(11, 3.2))
    per_image = np.bincount([o.image_index for o in objects], minlength=len(split.images))
    a.hist(per_image, bins=np.arange(per_image.max() + 2) - 0.5 if len(per_image) else 1, color="tab:green")
    a.set_title("objects per image", fontsize=10)
    b.hist(brightness, bins=40, range=(0, 255), color="tab:orange")
    b.set_title("image brightness (mean grey level)", fontsize=10)
    return fig


def _crop(image: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """A square around the object with half its size as margin, so small objects are visible with context."""
    x, y, w, h = bbox
    side = max(w, h) * 1.5 + 16
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(image.shape[1], cx + side / 2)), int(min(image.shape[0], cy + side / 2))
    crop = image[y0:y1, x0:x1]
    return cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA if crop.shape[0] > TILE else cv2.INTER_LINEAR)


def example_grid(
    split: CocoSplit, cache: MaskCache, objects: list[ObjectRow], cls: int, k: int = EXAMPLES
) -> np.ndarray | None:
    """k objects of class `cls` spread over its area range (smallest to largest), each cropped with the masks
    drawn and its box outlined; None when the class has no object."""
    rows = sorted((o for o in objects if o.cls == cls), key=lambda o: o.area)
    if not rows:
        return None
    picks = [rows[i] for i in sorted(set(np.linspace(0, len(rows) - 1, min(k, len(rows))).round().astype(int)))]
    colors = class_colors(len(split.classes))
    tiles = []
    for o in picks:
        img = split.images[o.image_index]
        drawn = blend(read_image(split.image_path(img), split.max_pixels), cache.get(img), colors, 0.45)
        x, y, w, h = (int(round(v)) for v in o.bbox)
        cv2.rectangle(drawn, (x, y), (x + w, y + h), colors[cls], 2)
        tiles.append(_crop(drawn, o.bbox))
    gap = np.full((TILE, 4, 3), 255, np.uint8)
    return np.hstack([t for tile in tiles for t in (tile, gap)][:-1])


def write_eda(split: CocoSplit, out: str | Path, cache: MaskCache, *, examples: int = EXAMPLES) -> dict:
    """``out/index.html`` and ``out/eda.json``; returns the numbers."""
    if not split.has_annotations:
        raise TrashsegError(
            f"{split.path}: has no annotations; the EDA describes labelled splits (use --split train or val)"
        )
    out = Path(out)
    make_folder(out)
    objects = object_rows(split)
    stats = class_stats(split, cache)
    brightness = image_brightness(split)
    numbers = summarize(split, stats, objects, brightness)
    classes = split.classes
    page = Page(
        f"EDA: {split.name}",
        f"{split.path} — {numbers['images']} images, {numbers['objects']} objects, "
        f"{len(classes) - 1} classes (+ background)",
    )
    page.heading("Classes")
    pc = numbers["per_class"]
    page.table(
        ["class", "objects", "images", "pixel share", "median area", "thin", *[b for b, _ in SIZE_BUCKETS]],
        [
            [name, v["objects"], v["images"], v["pixel_share"], v["median_area"], v["thin"], *v["sizes"].values()]
            for name, v in pc.items()
        ],
        sortable=True,
    )
    fg = classes[1:]
    page.figure(
        _bars(
            [
                (fg, [pc[c]["objects"] for c in fg], "objects (log)", True, "tab:blue"),
                (fg, [pc[c]["images"] for c in fg], "images containing the class", False, "tab:purple"),
                (classes, [pc[c]["pixel_share"] for c in classes], "pixel share (log)", True, "tab:olive"),
            ]
        ),
        "objects, images and pixel share per class",
    )
    page.heading("Objects: how many, how large, how thin")
    page.figure(_size_figure(objects, classes), "object sizes")
    page.figure(
        _bars(
            [
                (
                    fg,
                    [pc[c]["thin"] / max(1, pc[c]["objects"]) for c in fg],
                    f"share of thin objects (area < {THIN_FILL} of their box)",
                    False,
                    "tab:red",
                )
            ]
        ),
        "thin objects",
    )
    page.heading("Which classes occur together")
    page.figure(_cooccurrence_figure(np.array(numbers["cooccurrence"]["images"]), classes), "co-occurrence")
    page.heading("Images")
    page.figure(_images_figure(split, objects, brightness), "objects per image and brightness")
    page.table(["size (w×h)", "images"], list(numbers["image_sizes"].items()))
    page.heading("Examples per class (smallest → largest object, box outlined)")
    for c in range(1, len(classes)):
        grid = example_grid(split, cache, objects, c, examples)
        page.note(f"{classes[c]}: {pc[classes[c]]['objects']} objects" + ("" if grid is not None else " — none"))
        if grid is not None:
            page.picture(grid, f"examples of {classes[c]}")
    atomic_write_json(out / "eda.json", numbers)
    page.write(out / "index.html")
    return numbers
