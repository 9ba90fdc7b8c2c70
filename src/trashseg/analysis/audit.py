"""``trashseg audit``: rank the annotations that are probably wrong, from a model's saved probabilities.

Four kinds of suspect, each scored in [0, 1] so that one ranking holds them all:

- ``class``: an object whose labelled class a confident model contradicts over most of its area; score = mean
  probability of the suggested class minus that of the labelled one, over the object's visible pixels.
- ``background``: the same, where the model's suggestion is background (a phantom or a badly placed polygon).
- ``unlabelled``: a connected region the model confidently calls an object where nothing is annotated (a dropped
  object); score = mean probability of the suggested class minus that of background over the region.
- ``duplicate``: two annotations of different classes covering the same pixels (the seed's flyers labelled both
  General trash and Paper); score = their mask IoU. The one the model believes less is reported, the other's class
  suggested.

"Confident" is cleanlab's confident learning (Northcutt et al., 2021): a pixel contradicts its label when another
class's probability reaches that class's threshold, the mean probability the model gives the class on pixels
labelled with it. The thresholds come from cleanlab's streaming ``LabelInspector`` and each image's label-quality
score from ``cleanlab.segmentation.rank.get_label_quality_scores``. The object-level ranking is built here on top,
by hand: cleanlab's segmentation filter ranks pixels, needs every image at one size and all of them in memory at
once (N×K×H×W), and knows nothing of annotations, so it cannot say which annotation is wrong or what to do about it.

Predictions made by a model that trained on the audited images are not honest input: the model has learned the
wrong labels too. Out-of-fold predictions (``train --all-folds K`` then ``kfold --oof``) are; the command warns
otherwise (``leakage_warnings``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pydantic import BaseModel, ConfigDict, RootModel, StrictInt, StringConstraints

from trashseg.config import DataConfig, InferConfig, validate_as
from trashseg.data.coco import CocoSplit, parse_split, read_json
from trashseg.data.convert import edge_polygons
from trashseg.data.images import read_image
from trashseg.data.masks import MaskCache, annotation_rle
from trashseg.draw import Color, blend, class_colors
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, atomic_write_text, read_json_bounded
from trashseg.infer.folder import PredictionFolder
from trashseg.models.segmenter import has_model_file, run_folder
from trashseg.progress import progress_bar

KINDS = ("class", "background", "unlabelled", "duplicate")


class MissingExtraError(TrashsegError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def _cleanlab() -> tuple[Any, Any]:
    try:
        from cleanlab.experimental.label_issues_batched import LabelInspector
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        raise MissingExtraError(
            "trashseg audit needs cleanlab, which is not installed: "
            "pip install 'trashseg[audit]' (or pip install cleanlab)"
        ) from None
    return LabelInspector, get_label_quality_scores


@dataclass(frozen=True)
class AuditSettings:
    """How sure and how big a contradiction must be before it is listed."""

    min_share: float = 0.5  # an object is contradicted when cleanlab flags at least this share of its pixels
    min_pixels: int = 16  # objects (visible part) and unlabelled regions smaller than this are not judged
    min_region_share: float = 0.001  # ... nor unlabelled regions under this share of the image
    margin: float = 0.01  # unlabelled pixels this close (share of the image's long side) to an annotation of the
    # same class are its outline's slack, not a missing object
    duplicate_iou: float = 0.5  # two annotations of different classes overlapping this much are one object
    small_quantile: float = 0.1  # an unlabelled region smaller than this quantile of its class's annotated areas
    # has its score scaled down by area / that area: specks of a model's noise rank below missing objects


@dataclass
class Issue:
    """One suspect annotation (or unannotated region), as listed in issues.json."""

    image_id: int
    file_name: str
    annotation_id: int | None  # None for an unlabelled region
    labelled: str  # class name as annotated ("Background" style index 0 name for an unlabelled region)
    suggested: str
    kind: str
    score: float
    bbox: list[int]  # x, y, w, h of the object or region
    area: int  # pixels of the object (visible part) or region
    share: float | None = None  # share of those pixels cleanlab flags as confidently the suggested class
    duplicate_of: int | None = None  # the other annotation of a duplicate pair
    rle: dict | None = field(default=None, repr=False)  # the region's or object's mask (gallery, COCO export)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record; an unlabelled region, which no annotation describes, carries its mask as COCO RLE."""
        out = asdict(self)
        rle = out.pop("rle")
        if self.annotation_id is None:
            out["region"] = rle
        return out


MAX_ISSUES_BYTES = 256 << 20  # an audit of 100k suspects with their masks is ~100 MB; json.loads holds ~10x
Text = Annotated[str, StringConstraints(max_length=1000)]


class IssueRecord(BaseModel):
    """A record of issues.json as it is read back (``convert export --flagged``): the fields readers use, checked.
    A hand-made list of ``{"image_id": ...}`` records is enough to choose images."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    image_id: StrictInt
    kind: Text | None = None
    labelled: Text | None = None
    suggested: Text | None = None
    score: float = 0.0


class IssueList(RootModel[list[IssueRecord]]):
    pass


def read_issues(path: Path) -> list[IssueRecord]:
    """An audit's issues.json, bounded and validated: a named error names the file and each wrong field."""
    try:
        data = read_json_bounded(path, MAX_ISSUES_BYTES, "the issues.json of `trashseg audit`")
    except FileNotFoundError:
        raise TrashsegError(f"{path}: not found (it is the issues.json of `trashseg audit`)") from None
    return validate_as(IssueList, data, str(path), what="issues.json of `trashseg audit`").root


# ----------------------------------------------------------------------------------------- pixel level (cleanlab)


def confident_classes(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per pixel, the most probable class among those at or above their cleanlab threshold; -1 where none is.

    This is the assignment rule of cleanlab's confident joint (``cleanlab.count.compute_confident_joint``), applied
    image by image so that no image has to be resized to a common shape or held in memory with the others."""
    above = probs >= thresholds[:, None, None]
    masked = np.where(above, probs, -1.0)
    best = masked.argmax(0)
    return np.where(above.any(0), best, -1)


def pixel_issues(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(issue mask, confident class): pixels confidently of another class than labelled, which the model's
    argmax also gives to another class (``cleanlab.segmentation.filter.find_label_issues``'s final check)."""
    confident = confident_classes(probs, thresholds)
    issue = (confident >= 0) & (confident != labels) & (probs.argmax(0) != labels)
    return issue, confident


# ------------------------------------------------------------------------------------------------ object level


def _bbox(mask: np.ndarray) -> list[int]:
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return [int(x), int(y), int(w), int(h)]


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def object_contradiction(
    probs: np.ndarray,
    visible: np.ndarray,
    given: int,
    issue: np.ndarray,
    confident: np.ndarray,
    settings: AuditSettings,
) -> tuple[int, float, float] | None:
    """(suggested class, score, share) when the model contradicts `given` over most of the object, else None.

    The suggestion is the class with the highest mean probability over the object other than the given one;
    share counts the pixels cleanlab flags as confidently that class."""
    n = int(visible.sum())
    if n < settings.min_pixels:
        return None
    means = probs[:, visible].mean(1)
    means[given] = -1.0
    suggested = int(means.argmax())
    share = float((issue & (confident == suggested))[visible].sum() / n)
    score = float(means[suggested] - probs[given][visible].mean())
    if share < settings.min_share or score <= 0:
        return None
    return suggested, score, share


def typical_areas(split: CocoSplit, quantile: float) -> dict[int, float]:
    """Per class index, the `quantile` of its annotations' areas: the size below which an object of that class
    is rare in this split."""
    areas: dict[int, list[float]] = {}
    for anns in split.anns_by_image.values():
        for ann in anns:
            areas.setdefault(split.cat_to_class[ann["category_id"]], []).append(float(ann.get("area") or 0.0))
    return {cls: float(np.quantile(a, quantile)) for cls, a in areas.items()}


def unlabelled_regions(
    probs: np.ndarray,
    labels: np.ndarray,
    issue: np.ndarray,
    confident: np.ndarray,
    settings: AuditSettings,
    typical: dict[int, float] | None = None,
) -> list[tuple[int, float, np.ndarray]]:
    """(class, score, region mask) for each connected region of background-labelled pixels that the model
    confidently gives one object class, away from the annotations of that class (their outlines' slack). A region
    smaller than its class's `typical` area has its score scaled by the ratio: with a noisy model, dozens of
    confident specks would otherwise outrank one missing object of ordinary size."""
    h, w = labels.shape
    min_area = max(settings.min_pixels, settings.min_region_share * h * w)
    radius = max(1, round(settings.margin * max(h, w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    candidates = issue & (labels == 0)
    out = []
    for cls in np.unique(confident[candidates]):
        cls = int(cls)
        if cls <= 0:
            continue
        near = cv2.dilate((labels == cls).astype(np.uint8), kernel).astype(bool)
        pixels = (candidates & (confident == cls) & ~near).astype(np.uint8)
        count, comp, stats, _ = cv2.connectedComponentsWithStats(pixels, connectivity=8)
        for i in range(1, count):
            if stats[i, cv2.CC_STAT_AREA] < min_area:
                continue
            region = comp == i
            score = float(probs[cls][region].mean() - probs[0][region].mean())
            if typical and typical.get(cls, 0) > 0:
                score *= min(1.0, stats[i, cv2.CC_STAT_AREA] / typical[cls])
            if score > 0:
                out.append((cls, score, region))
    return out


def duplicate_pairs(rles: list[dict], classes: list[int], min_iou: float) -> list[tuple[int, int, float]]:
    """(i, j, IoU) for annotations of different classes whose masks overlap at least `min_iou`."""
    if len(rles) < 2:
        return []
    ious = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)))
    return [
        (i, j, float(ious[i, j]))
        for i in range(len(rles))
        for j in range(i + 1, len(rles))
        if classes[i] != classes[j] and ious[i, j] >= min_iou
    ]


def audit_image(
    image: dict,
    anns: list[dict],
    probs: np.ndarray,
    labels: np.ndarray,
    thresholds: np.ndarray,
    cat_to_class: dict[int, int],
    names: list[str],
    settings: AuditSettings,
    file: str = "",
    typical: dict[int, float] | None = None,
) -> list[Issue]:
    """Every suspect of one image; an annotation is listed once (a duplicate pair explains its own
    contradiction, so the pair's members are not judged again as single objects)."""
    h, w = labels.shape
    issue, confident = pixel_issues(probs, labels, thresholds)
    objects = [(ann, rle) for ann in anns if (rle := annotation_rle(ann, h, w, file)[0]) is not None]
    masks = [mask_utils.decode(rle).astype(bool) for _, rle in objects]
    classes = [cat_to_class[ann["category_id"]] for ann, _ in objects]
    found: list[Issue] = []
    paired: set[int] = set()

    def issue_of(k: int, **kw: Any) -> Issue:
        ann = objects[k][0]
        return Issue(
            image["id"],
            image["file_name"],
            ann["id"],
            names[classes[k]],
            bbox=_bbox(masks[k]),
            rle=_rle(masks[k]),
            **kw,
        )

    for i, j, iou in duplicate_pairs([rle for _, rle in objects], classes, settings.duplicate_iou):
        both = masks[i] & masks[j]
        weaker, other = (i, j) if probs[classes[i]][both].mean() <= probs[classes[j]][both].mean() else (j, i)
        found.append(
            issue_of(
                weaker,
                suggested=names[classes[other]],
                kind="duplicate",
                score=iou,
                area=int(masks[weaker].sum()),
                duplicate_of=objects[other][0]["id"],
            )
        )
        paired |= {i, j}
    for k in range(len(objects)):
        if k in paired:
            continue
        visible = masks[k] & (labels == classes[k])
        hit = object_contradiction(probs, visible, classes[k], issue, confident, settings)
        if hit:
            suggested, score, share = hit
            found.append(
                issue_of(
                    k,
                    suggested=names[suggested],
                    kind="background" if suggested == 0 else "class",
                    score=score,
                    area=int(visible.sum()),
                    share=share,
                )
            )
    for cls, score, region in unlabelled_regions(probs, labels, issue, confident, settings, typical):
        found.append(
            Issue(
                image["id"],
                image["file_name"],
                None,
                names[0],
                names[cls],
                "unlabelled",
                score,
                _bbox(region),
                int(region.sum()),
                share=1.0,
                rle=_rle(region),
            )
        )
    return found


# ------------------------------------------------------------------------------------------------ the dataset


@dataclass
class AuditResult:
    issues: list[Issue]  # best first
    image_scores: list[dict]  # cleanlab's label quality per image, lowest (worst) first
    thresholds: dict[str, float]  # cleanlab's confident threshold per class
    warnings: list[str]


def _probs_for(folder: PredictionFolder, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities at the mask's size (they are saved at the image's size; a COCO size that disagrees with the
    image file is brought to it, bilinear per class)."""
    probs = folder.probs(name)
    if probs.shape[1:] != shape:
        probs = np.stack([cv2.resize(p, shape[::-1], interpolation=cv2.INTER_LINEAR) for p in probs])
    return probs


def _audited_images(folder: PredictionFolder, split: CocoSplit) -> tuple[list[dict], list[str]]:
    """Images of the split with probabilities; a warning says how many have none."""
    meta = folder.meta()
    if not meta.has_probs:
        raise TrashsegError(
            f"{folder.root}: no saved probabilities; predict with --save-probs (or give the run "
            "folder to `trashseg audit`, which predicts them)"
        )
    meta.check_classes(
        split.classes, folder.root, "the dataset config", "; give the matching class list (-c / --set data.classes=...)"
    )
    if not split.has_annotations:
        raise TrashsegError(f"{split.path}: no annotations to audit")
    predicted = set(folder.names())
    images = [img for img in split.images if img["file_name"] in predicted]
    if not images:
        raise TrashsegError(
            f"{folder.root}: none of the {len(split.images)} images of {split.path} is predicted "
            "there; predict that split (--split) first"
        )
    missing = len(split.images) - len(images)
    warnings = (
        [
            f"{missing} of {len(split.images)} images of {split.name} have no prediction in {folder.root} and "
            "are not audited"
        ]
        if missing
        else []
    )
    return images, warnings


def _labels_and_probs(
    folder: PredictionFolder, truth: MaskCache, images: list[dict], label: str
) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """(image, its mask, its probabilities at the mask's size) per image, with a progress bar: each audit pass."""
    with progress_bar() as bar:
        task = bar.add_task(label, total=len(images), rate="-")
        for img in images:
            labels = truth.get(img)
            yield img, labels, _probs_for(folder, img["file_name"], labels.shape)
            bar.update(task, advance=1)


def run_audit(
    pred: str | Path, split: CocoSplit, truth: MaskCache, *, settings: AuditSettings | None = None
) -> AuditResult:
    """Two passes over the images: cleanlab's per-class thresholds from all of them, then each image judged."""
    inspector_cls, quality_scores = _cleanlab()
    settings = settings or AuditSettings()
    folder = PredictionFolder(pred)
    images, warnings = _audited_images(folder, split)
    names = split.classes
    inspector = inspector_cls(num_class=len(names), verbose=False, store_results=False)
    for _, labels, probs in _labels_and_probs(folder, truth, images, "audit: class thresholds"):
        inspector.update_confident_thresholds(labels.ravel(), probs.reshape(len(names), -1).T)
    thresholds = np.asarray(inspector.get_confident_thresholds(silent=True), dtype=np.float32)
    typical = typical_areas(split, settings.small_quantile)
    issues, image_scores = [], []
    for img, labels, probs in _labels_and_probs(folder, truth, images, "audit: judge images"):
        score = quality_scores(labels[None], probs[None], verbose=False)[0][0]
        image_scores.append({"image_id": img["id"], "file_name": img["file_name"], "label_quality": float(score)})
        issues += audit_image(
            img,
            split.anns_by_image.get(img["id"], []),
            probs,
            labels,
            thresholds,
            split.cat_to_class,
            names,
            settings,
            str(split.path),
            typical,
        )
    issues.sort(key=lambda i: -i.score)
    image_scores.sort(key=lambda s: s["label_quality"])
    return AuditResult(issues, image_scores, dict(zip(names, thresholds.tolist(), strict=True)), warnings)


# ------------------------------------------------------------------------------------------------ leakage


def _sources(folder: PredictionFolder) -> list[tuple[str | None, set[str]]]:
    """(checkpoint, file names it predicted) for every model behind a prediction folder, through ensembles,
    k-fold and out-of-fold folders (their meta lists member folders)."""
    return [(meta.source, set(model.names())) for model, meta in folder.models()]


def _trained_on(checkpoint: str, data_root: Path) -> set[str] | None:
    """File names of the split the checkpoint's run trained on, from the run's config.yaml; None when unknown
    (an ONNX model, a moved run). A relative data.root is tried as given, then the audited dataset's root."""
    from trashseg.config import load_config

    config = run_folder(checkpoint) / "config.yaml"
    if not config.is_file():
        return None
    data = load_config(config).data
    roots = ([data.root] if data.root else []) + [data_root]
    for root in roots:
        path = Path(root) / data.train
        if path.is_file():
            return {img["file_name"] for img in parse_split(path, root, data.classes).images}  # checked as any split
    return None


def leakage_warnings(pred: str | Path, split: CocoSplit) -> list[str]:
    """Warnings for each model that trained on images it is now auditing (it has learned their labels, right
    or wrong, so it contradicts few of them), or whose training images cannot be known."""
    audited = {img["file_name"] for img in split.images}
    out = []
    for source, predicted in _sources(PredictionFolder(pred)):
        judged = predicted & audited
        trainable = source is not None and (source.endswith(".ckpt") or has_model_file(Path(source)))
        trained = _trained_on(source, split.root) if source is not None and trainable else None
        if trained is None:
            out.append(
                f"cannot tell which images {source or pred} trained on (no run config.yaml beside it): if it "
                f"saw {split.name}, the audit finds fewer errors than there are"
            )
        elif seen := judged & trained:
            out.append(
                f"{len(seen)} of the {len(judged)} audited images it predicted were in the training data of "
                f"{source}: the model learned their labels, wrong ones included, so this audit under-reports. "
                "Out-of-fold predictions are the honest input: trashseg split DATA --folds K; trashseg train "
                "RECIPE --data DATA --all-folds K --out runs/kf; trashseg audit runs/kf --data DATA"
            )
    return out


# ------------------------------------------------------------------------------------------------ outputs

CROP_SIDE = 224  # px: the long side of each gallery crop


def _crop_box(bbox: list[int], h: int, w: int) -> tuple[int, int, int, int]:
    """The object's box grown by half its size on each side (context), at least 48 px, inside the image."""
    x, y, bw, bh = bbox
    pad = max(24, max(bw, bh) // 2)
    return max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)


def _outlined(image: np.ndarray, mask: np.ndarray, color: Color) -> np.ndarray:
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, color, 1, cv2.LINE_AA)
    return out


def _jpeg_b64(rgb: np.ndarray) -> str:
    scale = CROP_SIDE / max(rgb.shape[:2])
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise TrashsegError("could not encode a gallery crop as JPEG")
    return base64.b64encode(jpeg.tobytes()).decode("ascii")


def issue_panels(image: np.ndarray, issue: Issue, pred: np.ndarray, names: list[str]) -> tuple[str, str]:
    """Two base64 JPEG crops around the issue: the annotation as labelled (tinted in its class's colour, outlined
    in the suggested class's), and the model's prediction over the same crop."""
    colors = class_colors(len(names))
    mask = mask_utils.decode(issue.rle).astype(bool)
    x0, y0, x1, y1 = _crop_box(issue.bbox, *mask.shape)
    crop, m = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    given, suggested = names.index(issue.labelled), names.index(issue.suggested)
    outline = colors[suggested] if suggested else (255, 255, 255)
    labelled = _outlined(blend(crop, m.astype(np.uint8) * given, colors) if given else crop, m, outline)
    predicted = _outlined(blend(crop, pred[y0:y1, x0:x1], colors), m, outline)
    return _jpeg_b64(labelled), _jpeg_b64(predicted)


_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}.warn{background:#fee;border:1px solid #c00;padding:.5em}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;padding:6px;font-size:13px;max-width:470px}
.card img{margin-right:4px}.kind{font-weight:bold}"""
_SCRIPT = """function show(){const on=[...document.querySelectorAll('input[name=kind]:checked')].map(e=>e.value);
document.querySelectorAll('.card').forEach(c=>{c.style.display=on.includes(c.dataset.kind)?'':'none'})}"""


def _card(rank: int, issue: Issue, panels: tuple[str, str]) -> str:
    e = html.escape
    ann = f"annotation {issue.annotation_id}" if issue.annotation_id is not None else "no annotation"
    dup = f" (same object as annotation {issue.duplicate_of})" if issue.duplicate_of is not None else ""
    return (
        f'<div class="card" data-kind="{issue.kind}"><div><img src="data:image/jpeg;base64,{panels[0]}" '
        f'alt="labelled"><img src="data:image/jpeg;base64,{panels[1]}" alt="predicted"></div>'
        f'<div>#{rank} <span class="kind">{issue.kind}</span> score {issue.score:.3f}: labelled '
        f"<b>{e(issue.labelled)}</b>, model says <b>{e(issue.suggested)}</b></div>"
        f"<div>{e(issue.file_name)} (image {issue.image_id}), {ann}{dup}, {issue.area} px</div></div>"
    )


def gallery_html(cards: list[str], result: AuditResult, title: str, total: int) -> str:
    e = html.escape
    counts = {k: sum(i.kind == k for i in result.issues) for k in KINDS}
    warn = "".join(f'<p class="warn">{e(w)}</p>' for w in result.warnings)
    boxes = " ".join(
        f'<label><input type="checkbox" name="kind" value="{k}" checked onchange="show()"> {k} ({counts[k]})</label>'
        for k in KINDS
    )
    worst = "".join(
        f"<tr><td>{e(s['file_name'])}</td><td>{s['image_id']}</td><td>{s['label_quality']:.3f}</td></tr>"
        for s in result.image_scores[:15]
    )
    thresholds = "".join(f"<tr><td>{e(k)}</td><td>{v:.3f}</td></tr>" for k, v in result.thresholds.items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head><body><h1>{e(title)}</h1>{warn}"
        f"<p>{total} suspects, the first {len(cards)} shown best first. Left: the annotation as labelled "
        "(tinted in its class's colour); right: the model's prediction; the outline is the annotation (or the "
        "unlabelled region) in the suggested class's colour (white for background).</p>"
        f"<p>{boxes}</p><div class='grid'>{''.join(cards)}</div>"
        "<h2>Images cleanlab scores lowest</h2><p>cleanlab.segmentation label quality (softmin over pixels; "
        f"low = likely label issues)</p><table><tr><th>file</th><th>image id</th><th>quality</th></tr>{worst}"
        "</table><h2>Confident thresholds</h2><p>cleanlab's per-class thresholds: a pixel is confidently of a "
        "class when its probability reaches the class's threshold.</p><table><tr><th>class</th><th>threshold"
        f"</th></tr>{thresholds}</table></body></html>"
    )


def flagged_coco(issues: list[Issue], split: CocoSplit) -> dict:
    """The flagged items as a small COCO file for a labelling tool (CVAT imports COCO 1.0): their images, the
    flagged annotations (and the other half of each duplicate pair) with the audit's verdict in ``attributes``,
    and a proposed annotation, as polygons, for each unlabelled region."""
    data = read_json(split.path)
    categories = list(data["categories"])
    cat_of = {name: c["id"] for c in reversed(categories) if (name := c["name"]) in split.classes}
    by_id = {a["id"]: a for a in data.get("annotations", [])}
    images = {img["id"]: img for img in split.images}
    next_id = max(by_id, default=0) + 1
    anns: dict[int, dict] = {}
    for rank, issue in enumerate(issues, start=1):
        verdict = {
            "audit_rank": rank,
            "audit_kind": issue.kind,
            "audit_suggested": issue.suggested,
            "audit_score": round(issue.score, 4),
        }
        if issue.annotation_id is None:
            assert issue.rle is not None  # an unlabelled region always carries its mask
            if issue.suggested not in cat_of:
                cat_of[issue.suggested] = max(c["id"] for c in categories) + 1
                categories.append({"id": cat_of[issue.suggested], "name": issue.suggested})
            anns[next_id] = {
                "id": next_id,
                "image_id": issue.image_id,
                "category_id": cat_of[issue.suggested],
                "segmentation": edge_polygons(mask_utils.decode(issue.rle))[0],
                "area": issue.area,
                "bbox": issue.bbox,
                "iscrowd": 0,
                "attributes": verdict,
            }
            next_id += 1
            continue
        original = by_id[issue.annotation_id]
        anns[issue.annotation_id] = {**original, "attributes": {**original.get("attributes", {}), **verdict}}
        if issue.duplicate_of is not None and issue.duplicate_of not in anns:
            anns[issue.duplicate_of] = by_id[issue.duplicate_of]
    return {
        "info": {"description": f"trashseg audit: flagged items of {split.path.name}"},
        "images": [images[i] for i in sorted({a["image_id"] for a in anns.values()})],
        "categories": categories,
        "annotations": list(anns.values()),
    }


def write_audit(result: AuditResult, pred: str | Path, split: CocoSplit, out: str | Path, *, limit: int = 200) -> dict:
    """issues.json (every suspect, best first), images.json (cleanlab image scores), summary.json, gallery.html
    (the first `limit`, self-contained) and flagged_coco.json (the same `limit` items, for a labelling tool)."""
    out, folder = Path(out), PredictionFolder(pred)
    top = result.issues[:limit]
    atomic_write_json(out / "issues.json", [i.to_dict() for i in result.issues])
    atomic_write_json(out / "images.json", result.image_scores)
    atomic_write_json(out / "flagged_coco.json", flagged_coco(top, split))
    images = {img["id"]: img for img in split.images}
    by_image: dict[int, list[int]] = {}
    for rank, issue in enumerate(top):
        by_image.setdefault(issue.image_id, []).append(rank)
    cards: list[str] = [""] * len(top)
    with progress_bar() as bar:
        task = bar.add_task("audit: gallery", total=len(by_image), rate="-")
        for image_id, ranks in by_image.items():
            img = images[image_id]
            size = (img["width"], img["height"])  # the issues' masks are at the annotations' size
            rgb, pred_mask = read_image(split.image_path(img), split.max_pixels), folder.mask(img["file_name"])
            if rgb.shape[:2] != size[::-1]:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            if pred_mask.shape != size[::-1]:
                pred_mask = cv2.resize(pred_mask, size, interpolation=cv2.INTER_NEAREST)
            for rank in ranks:
                cards[rank] = _card(rank + 1, top[rank], issue_panels(rgb, top[rank], pred_mask, split.classes))
            bar.update(task, advance=1)
    title = f"trashseg audit: {split.name} with {Path(pred).name}"
    atomic_write_text(out / "gallery.html", gallery_html(cards, result, title, len(result.issues)))
    summary = {
        "prediction": str(Path(pred).resolve()),
        "split": str(split.path.resolve()),
        "images": len(result.image_scores),
        "issues": len(result.issues),
        "by_kind": {k: sum(i.kind == k for i in result.issues) for k in KINDS},
        "thresholds": result.thresholds,
        "warnings": result.warnings,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def predictions_for(
    source: Path, data: DataConfig, split: CocoSplit, out: Path, *, cfg: InferConfig, device: str = "cpu"
) -> Path:
    """A prediction folder with probabilities for `split`: `source` itself when it is one; out-of-fold ones when it
    holds fold runs (``train --all-folds``); else the run's (or checkpoint's) own, predicted into
    ``out/predictions`` (resumable, like ``trashseg predict --save-probs``)."""
    from trashseg.ensemble.kfold import oof_predict
    from trashseg.infer.predict import predict_split
    from trashseg.models.segmenter import load_model

    if (source / "meta.json").is_file():
        return source
    target = out / "predictions"
    if source.is_dir() and any((p / "checkpoints").is_dir() for p in source.glob("fold*")):
        oof_predict(source, data, split, target, cfg=cfg, device=device)
    else:
        predict_split(load_model(source, device), split, target, cfg=cfg, save_probs=True, device=device)
    return target
