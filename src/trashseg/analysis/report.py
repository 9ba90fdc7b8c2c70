"""``trashseg report``: where a model is wrong, in one HTML page: per-class IoU, the confusion matrix, IoU by object
size, per-image scores (CSV and JSON), the worst images side by side with the ground truth, several prediction
folders compared, and the learning curves of the runs that made them.

Split-level numbers are the competition's (one confusion matrix over the split at 256², ``trashseg.metrics``), so
they equal ``trashseg evaluate``'s. Per-image mIoU averages the classes present in that image's ground truth or
prediction. Object IoU is measured at the image's own size: an object's visible pixels against the pixels of its
class predicted inside its bounding box, less those of other objects of its class (predictions elsewhere belong to
other objects or are false positives of no object).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from trashseg.analysis.eda import SIZE_BUCKETS, size_bucket
from trashseg.analysis.html import Cell, Page, thumbnail
from trashseg.data.coco import CocoSplit
from trashseg.data.images import read_image
from trashseg.data.masks import MaskCache, annotation_rle
from trashseg.draw import blend, class_colors, figure, plain, plot_confusion
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, atomic_write_text, make_folder
from trashseg.infer.folder import PredictionFolder
from trashseg.metrics import COMPETITION_SIZE, SegScores, confusion_matrix, resize_nearest, scores_from_confusion
from trashseg.models.segmenter import has_model_file, run_folder
from trashseg.progress import progress_bar

WORST = 12
THUMB = 240


@dataclass
class FolderScores:
    """One prediction folder scored against a split."""

    name: str
    folder: PredictionFolder
    hist: np.ndarray  # C×C at the competition's size
    images: list[dict] = field(default_factory=list)  # per image: file_name, image_id, miou, pixel_acc
    objects: list[dict] = field(default_factory=list)  # per object: ann_id, class, area, bucket, iou

    @property
    def scores(self) -> SegScores:
        return scores_from_confusion(self.hist)

    def bucket_iou(self) -> dict[str, dict[str, float | None]]:
        """Mean object IoU per size bucket: over all objects, and per class."""
        out: dict[str, dict[str, float | None]] = {}
        for bucket, _ in SIZE_BUCKETS:
            rows = [o for o in self.objects if o["bucket"] == bucket]
            per = {"all": float(np.mean([o["iou"] for o in rows])) if rows else None, "objects": len(rows)}
            for name in sorted({o["class"] for o in rows}):
                per[name] = float(np.mean([o["iou"] for o in rows if o["class"] == name]))
            out[bucket] = per
        return out


def _object_ious(img: dict, split: CocoSplit, gt: np.ndarray, pred: np.ndarray) -> list[dict]:
    out = []
    for ann in split.anns_by_image.get(img["id"], []):
        rle, _ = annotation_rle(ann, img["height"], img["width"], str(split.path))
        if rle is None:
            continue
        cls = split.cat_to_class[ann["category_id"]]
        visible = mask_utils.decode(rle).astype(bool) & (gt == cls)
        if not visible.any():
            continue
        x, y, w, h = (int(v) for v in mask_utils.toBbox(rle))
        box = np.zeros_like(visible)
        box[y : y + h + 1, x : x + w + 1] = True
        hit = (pred == cls) & box & ~((gt == cls) & ~visible)  # another object of its class is not its error
        union = int((visible | hit).sum())
        out.append(
            {
                "image_id": img["id"],
                "ann_id": ann["id"],
                "class": split.classes[cls],
                "area": float(mask_utils.area(rle)),
                "bucket": size_bucket(float(mask_utils.area(rle))),
                "iou": float((visible & hit).sum()) / union,
            }
        )
    return out


def score_folder(folder: PredictionFolder, name: str, split: CocoSplit, cache: MaskCache) -> FolderScores:
    """Competition confusion matrix, per-image and per-object scores of one folder on `split`."""
    if folder.classes != split.classes:
        raise TrashsegError(f"{folder.root} predicts classes {folder.classes}, the dataset config has {split.classes}")
    predicted = set(folder.names())
    missing = [img["file_name"] for img in split.images if img["file_name"] not in predicted]
    if missing:
        raise TrashsegError(
            f"{folder.root}: no prediction for {len(missing)} image(s) of {split.path}, e.g. "
            f"{missing[:3]}; predict that split (trashseg predict ... --split) into it"
        )
    n = len(split.classes)
    result = FolderScores(name, folder, np.zeros((n, n), np.int64))
    start = time.perf_counter()
    with progress_bar() as bar:
        task = bar.add_task(f"scoring {name}", total=len(split.images), rate="-")
        for done, img in enumerate(split.images, start=1):
            gt, pred = cache.get(img), folder.mask(img["file_name"])
            if pred.shape != gt.shape:
                pred = cv2.resize(pred, gt.shape[::-1], interpolation=cv2.INTER_NEAREST)
            hist = confusion_matrix(
                resize_nearest(pred, COMPETITION_SIZE), resize_nearest(gt, COMPETITION_SIZE), n
            ).numpy()
            result.hist += hist
            scores = scores_from_confusion(hist)
            result.images.append(
                {
                    "file_name": img["file_name"],
                    "image_id": img["id"],
                    "miou": scores.miou,
                    "pixel_acc": scores.pixel_acc,
                }
            )
            result.objects += _object_ious(img, split, gt, pred)
            bar.update(task, advance=1, rate=f"{done / (time.perf_counter() - start):.1f}")
    return result


def source_runs(folder: PredictionFolder, seen: set[Path] | None = None) -> list[Path]:
    """The run folders behind a prediction folder, from meta.json: a checkpoint's run, an ONNX file's folder, an
    ensemble's or CRF's source folders followed back (each once)."""
    seen = set() if seen is None else seen
    meta = folder.meta()
    sources = [Path(p) for p in meta.members] or ([Path(meta.source)] if meta.source else [])
    runs = []
    for src in sources:
        if src in seen:
            continue
        seen.add(src)
        if src.suffix in (".ckpt", ".onnx") or has_model_file(src):
            runs.append(run_folder(src))
        elif (src / "meta.json").is_file():
            runs += source_runs(PredictionFolder(src), seen)
    return [r for r in dict.fromkeys(runs) if (r / "history.jsonl").is_file()]


def read_history(run: Path) -> list[dict]:
    lines = (run / "history.jsonl").read_text(encoding="utf-8").splitlines()
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise TrashsegError(f"{run / 'history.jsonl'}: not valid JSON lines ({exc})") from None


# -- figures -----------------------------------------------------------------------------------------------------
def _grouped_bars(
    series: list[tuple[str, list[float]]],
    ticks: list[str],
    *,
    figsize: tuple[float, float],
    ylabel: str,
    title: str,
    rotate: bool = False,
):
    """One bar group per tick, one bar per folder side by side: the class and size-bucket charts share it."""
    fig, ax = figure(figsize=figsize)
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series):
        ax.bar(np.arange(len(ticks)) + (k - (len(series) - 1) / 2) * width, values, width, label=plain(label))
    ticks = [plain(t) for t in ticks]
    if rotate:
        ax.set_xticks(range(len(ticks)), ticks, rotation=60, ha="right", fontsize=8)
    else:
        ax.set_xticks(range(len(ticks)), ticks)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _class_bars(results: list[FolderScores], classes: list[str]):
    series = [
        (f"{r.name} (mIoU {r.scores.miou:.4f})", np.nan_to_num(np.array(r.scores.iou, float), nan=0.0)) for r in results
    ]
    size = (max(6.0, 0.55 * len(classes) * max(1, len(results)) ** 0.5), 3.6)
    return _grouped_bars(
        series, classes, figsize=size, ylabel="IoU", title="per-class IoU (competition metric, 256²)", rotate=True
    )


def _bucket_bars(results: list[FolderScores]):
    names = [b for b, _ in SIZE_BUCKETS]
    buckets = [r.bucket_iou() for r in results]  # computed once per folder
    series = [(r.name, [b[n]["all"] or 0.0 for n in names]) for r, b in zip(results, buckets, strict=True)]
    ticks = [f"{n}\n({buckets[0][n]['objects']} objects)" for n in names]
    return _grouped_bars(series, ticks, figsize=(6.5, 3.2), ylabel="mean object IoU", title="IoU by object size")


def _curves(histories: dict[str, list[dict]]):
    fig, ax = figure(figsize=(6.5, 3.2))
    for run, records in histories.items():
        ax.plot([r["epoch"] for r in records], [r["miou"] for r in records], marker="o", ms=3, label=plain(run))
    ax.set_xlabel("epoch")
    ax.set_ylabel("val mIoU")
    ax.legend(fontsize=7)
    ax.set_title("learning curves of the source runs (history.jsonl)", fontsize=10)
    fig.tight_layout()
    return fig


def _row_picture(image: np.ndarray, mask: np.ndarray, colors: list) -> np.ndarray:
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return thumbnail(blend(image, mask, colors), THUMB)


# -- the command ---------------------------------------------------------------------------------------------------
def folder_names(paths: list[Path]) -> list[str]:
    """Short, distinct labels: the folder names, numbered when two are alike."""
    names = [Path(p).name or str(p) for p in paths]
    return [f"{k}:{n}" if names.count(n) > 1 else n for k, n in enumerate(names)]


def _per_image_rows(results: list[FolderScores]) -> list[dict]:
    rows = []
    for k, img in enumerate(results[0].images):
        row = {"file_name": img["file_name"], "image_id": img["image_id"]}
        for r in results:
            row[f"miou:{r.name}"] = r.images[k]["miou"]
            row[f"pixel_acc:{r.name}"] = r.images[k]["pixel_acc"]
        rows.append(row)
    return rows


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["file_name"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def write_report(preds: list[Path], split: CocoSplit, out: str | Path, cache: MaskCache, *, worst: int = WORST) -> dict:
    """``out/index.html``, ``out/report.json``, ``out/per_image.csv`` and ``out/per_image.json``, confusion
    matrices as PNG; returns the numbers."""
    if not split.has_annotations:
        raise TrashsegError(f"{split.path}: has no annotations, so it cannot be scored")
    out = Path(out)
    make_folder(out)
    classes = split.classes
    results = [
        score_folder(PredictionFolder(p), n, split, cache) for p, n in zip(preds, folder_names(preds), strict=True)
    ]
    per_image = _per_image_rows(results)
    histories = {str(run): read_history(run) for r in results for run in source_runs(r.folder)}
    numbers = {
        "split": str(split.path),
        "images": len(split.images),
        "size": COMPETITION_SIZE,
        "folders": {
            r.name: {
                "path": str(r.folder.root),
                **r.scores.to_dict(classes),
                "confusion": r.hist.tolist(),
                "iou_by_size": r.bucket_iou(),
            }
            for r in results
        },
        "runs": list(histories),
    }
    atomic_write_json(out / "report.json", numbers)
    atomic_write_json(out / "per_image.json", per_image)
    atomic_write_text(out / "per_image.csv", _csv(per_image))
    page = Page(
        f"Evaluation on {split.name}",
        f"{split.path}: {len(split.images)} images; "
        "split-level numbers are the competition's (one confusion matrix at 256², nearest)",
    )
    page.heading("Per-class IoU")
    page.table(
        ["folder", "mIoU", "pixel acc", "mean class acc", *classes],
        [[r.name, r.scores.miou, r.scores.pixel_acc, r.scores.mean_class_acc, *r.scores.iou] for r in results],
        sortable=True,
    )
    page.figure(_class_bars(results, classes), "per-class IoU")
    page.heading("Confusion matrices (rows: ground truth, row-normalised)")
    for k, r in enumerate(results):
        path = out / f"confusion_{k}.png"
        plot_confusion(r.hist, classes, path, f"{r.name}: mIoU {r.scores.miou:.4f}")
        page.png_file(path, f"confusion matrix of {r.name}")
    page.heading("IoU by object size")
    page.note(
        "Per object, at the image's size: its visible pixels against its class's predicted pixels inside "
        "its bounding box; COCO's size buckets."
    )
    page.figure(_bucket_bars(results), "IoU by object size")
    page.table(
        ["folder", *[b for b, _ in SIZE_BUCKETS]],
        [[r.name, *[r.bucket_iou()[b]["all"] for b, _ in SIZE_BUCKETS]] for r in results],
    )
    if histories:
        page.heading("Learning curves")
        page.figure(_curves(histories), "learning curves")
    _worst_gallery(page, results, split, cache, worst)
    page.write(out / "index.html")
    return numbers


def _worst_gallery(page: Page, results: list[FolderScores], split: CocoSplit, cache: MaskCache, worst: int) -> None:
    """The images with the lowest mIoU (averaged over the folders): image, ground truth, each prediction."""
    colors = class_colors(len(split.classes))
    mean = np.array(
        [
            np.nanmean([r.images[k]["miou"] for r in results])
            if any(r.images[k]["miou"] == r.images[k]["miou"] for r in results)
            else np.inf
            for k in range(len(split.images))
        ]
    )
    order = np.argsort(mean, kind="stable")[:worst]
    page.heading(f"The {len(order)} worst images (lowest per-image mIoU; click a header to sort)")
    page.swatches(split.classes[1:], colors[1:])
    rows = []
    for k in order:
        img = split.images[k]
        image = read_image(split.image_path(img), split.max_pixels)
        cells = [
            img["file_name"],
            *[r.images[k]["miou"] for r in results],
            Cell(img["file_name"], rgb=thumbnail(image, THUMB)),
            Cell("ground truth", rgb=_row_picture(image, cache.get(img), colors)),
        ]
        cells += [Cell(r.name, rgb=_row_picture(image, r.folder.mask(img["file_name"]), colors)) for r in results]
        rows.append(cells)
    page.table(
        ["file_name", *[f"mIoU {r.name}" for r in results], "image", "ground truth", *[r.name for r in results]],
        rows,
        sortable=True,
    )
