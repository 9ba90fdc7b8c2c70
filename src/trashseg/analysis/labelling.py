"""Data out: predictions and ground truth to a labelling tool, so a person can fix the labels the model doubts.

Two formats:
- **Label Studio** tasks (its JSON import): one task per image, ``data.image`` a URL (by default Label Studio's
  local-files URL of the dataset's ``file_name``), the model's regions as ``predictions`` and the annotations as
  ``annotations``, both ``polygonlabels`` in percent of the image size; with a ``label_config.xml`` beside it for
  the project. Polygons are traced along pixel edges (``data.convert.edge_polygons``), exact except that Label
  Studio polygons cannot hold a hole: such a region is exported as its outline and counted in the summary.
- **CVAT** "COCO 1.0": one COCO file, category id = class index, each predicted region as polygons where they are
  exact and as RLE (``iscrowd: 1``, CVAT's mask) elsewhere, or the split's own annotations; read back by
  ``trashseg convert coco`` after the fix.

``flagged``: only the images a ``trashseg audit`` lists in its ``issues.json`` (each task also carries the audit's
verdicts for its image as ``data.audit``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from pycocotools import mask as mask_utils

from trashseg.analysis.audit import IssueRecord, read_issues
from trashseg.data.coco import CocoSplit
from trashseg.data.convert import coco_categories, edge_polygons, mask_annotations
from trashseg.data.masks import annotation_rle
from trashseg.draw import class_colors
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_json, atomic_write_text
from trashseg.infer.folder import PredictionFolder
from trashseg.progress import progress_bar

LOCAL_FILES = "/data/local-files/?d="  # Label Studio's URL for files under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # not in XML 1.0's Char


def read_flagged(issues: Path) -> dict[int, list[IssueRecord]]:
    """``trashseg audit``'s issues.json as image id → its issues (best first)."""
    out: dict[int, list[IssueRecord]] = {}
    for record in read_issues(issues):
        out.setdefault(record.image_id, []).append(record)
    return out


def _chosen_images(
    split: CocoSplit, pred: PredictionFolder | None, flagged: dict[int, list[IssueRecord]] | None
) -> list[dict]:
    images = split.images
    if flagged is not None:
        unknown = sorted(set(flagged) - {img["id"] for img in images})
        if unknown:
            raise TrashsegError(
                f"audit issues name image ids {unknown[:10]} that {split.path} does not hold: give "
                "the split the audit ran on (--split / --data)"
            )
        images = [img for img in images if img["id"] in flagged]
    if pred is not None:
        done = set(pred.names())
        missing = [img["file_name"] for img in images if img["file_name"] not in done]
        if missing:
            raise TrashsegError(
                f"{pred.root}: no prediction for {len(missing)} image(s) of {split.name}, e.g. "
                f"{missing[0]!r}; finish `trashseg predict` first or give the right --split"
            )
    return images


def _truth_annotations(split: CocoSplit, image: dict) -> list[dict]:
    """The image's annotations with category id = class index (as ``coco_categories`` numbers them)."""
    return [
        {**ann, "category_id": split.cat_to_class[ann["category_id"]]}
        for ann in split.anns_by_image.get(image["id"], [])
    ]


def _predicted_annotations(
    pred: PredictionFolder, image: dict, first_id: int, with_probs: bool
) -> tuple[list[dict], list[float]]:
    """Regions of the predicted mask (at the image's size) and each one's mean confidence when probs exist."""
    mask = pred.mask(image["file_name"])
    if mask.shape != (image["height"], image["width"]):
        raise TrashsegError(
            f"{pred.mask_path(image['file_name'])}: mask is {mask.shape[1]}x{mask.shape[0]}, image "
            f"{image['id']} is {image['width']}x{image['height']}"
        )
    anns = mask_annotations(mask, image["id"], first_id)
    if not with_probs:
        return anns, []
    probs = pred.probs(image["file_name"])
    scores = [float(probs[a["category_id"]][mask_utils.decode(_rle(a, mask.shape)).astype(bool)].mean()) for a in anns]
    return anns, scores


def _rle(ann: dict, shape: tuple[int, int]) -> dict:
    rle, _ = annotation_rle(ann, *shape)
    if rle is None:
        raise TrashsegError(f"annotation {ann['id']} of image {ann['image_id']} covers no usable pixel")
    return rle


# ------------------------------------------------------------------------------------------------ Label Studio


def label_studio_config(classes: list[str]) -> str:
    """The labelling interface for the tasks: an image and one polygon label per object class, in our colours.

    Built with ElementTree, which escapes each name as XML requires: a quote or ``<`` in a class name can neither
    break the file nor add tags to it."""
    colours = class_colors(len(classes))
    view = ET.Element("View")
    ET.SubElement(view, "Image", name="image", value="$image", zoom="true")
    labels = ET.SubElement(view, "PolygonLabels", name="label", toName="image", strokeWidth="2", opacity="0.4")
    for i, name in enumerate(classes):
        if i == 0:
            continue
        if _NOT_XML.search(name):
            raise TrashsegError(
                f"class {i} {name!r} holds a control character that XML cannot carry: rename it for Label Studio"
            )
        ET.SubElement(labels, "Label", value=name, background="#" + "".join(f"{c:02x}" for c in colours[i]))
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def model_id(source: str) -> str:
    """A model's name without the folders it lies in (exports are shared; they must not show the machine's paths,
    as serve's ``/info`` does not): ``run/best.ckpt`` for a run's checkpoint, else the file or folder name."""
    path = Path(source)
    return f"{path.parent.parent.name}/{path.name}" if path.parent.name == "checkpoints" else path.name


def _ls_regions(ann: dict, classes: list[str], h: int, w: int, score: float | None) -> tuple[list[dict], bool]:
    """Label Studio polygon results of one annotation (one per part), and whether they are exact."""
    seg = ann["segmentation"]
    if isinstance(seg, list):
        parts, exact = seg, True
    else:
        parts, exact = edge_polygons(mask_utils.decode(_rle(ann, (h, w))))
    results = []
    for k, part in enumerate(parts):
        points = [[100.0 * x / w, 100.0 * y / h] for x, y in zip(part[0::2], part[1::2], strict=True)]
        result = {
            "id": f"a{ann['id']}p{k}",
            "from_name": "label",
            "to_name": "image",
            "type": "polygonlabels",
            "original_width": w,
            "original_height": h,
            "image_rotation": 0,
            "value": {"points": points, "closed": True, "polygonlabels": [classes[ann["category_id"]]]},
        }
        if score is not None:
            result["score"] = round(score, 4)
        results.append(result)
    return results, exact


def label_studio_tasks(
    split: CocoSplit,
    pred: PredictionFolder | None,
    *,
    truth: bool = True,
    flagged: dict[int, list[IssueRecord]] | None = None,
    image_url: str = LOCAL_FILES,
) -> tuple[list[dict], dict]:
    """Tasks for Label Studio's JSON import, and counts (images, regions, regions whose hole was filled)."""
    if pred is None and not (truth and split.has_annotations):
        raise TrashsegError(f"{split.path}: no annotations and no prediction folder: nothing to export")
    tasks, counts = [], {"images": 0, "predicted_regions": 0, "annotated_regions": 0, "holes_filled": 0}
    meta = pred.meta() if pred is not None else None
    model = model_id(meta.source or str(pred.root)) if meta is not None and pred is not None else None
    with_probs = meta is not None and meta.has_probs
    images = _chosen_images(split, pred, flagged)
    with progress_bar() as bar:
        step = bar.add_task("export: Label Studio", total=len(images), rate="-")
        for image in images:
            h, w = image["height"], image["width"]
            task: dict = {
                "data": {
                    "image": image_url + quote(image["file_name"]),
                    "image_id": image["id"],
                    "file_name": image["file_name"],
                }
            }
            if flagged is not None:
                task["data"]["audit"] = "; ".join(
                    f"{i.kind}: {i.labelled} → {i.suggested} ({i.score:.2f})" for i in flagged[image["id"]]
                )
            if pred is not None:
                anns, scores = _predicted_annotations(pred, image, 1, with_probs)
                result = []
                for k, ann in enumerate(anns):
                    regions, exact = _ls_regions(ann, split.classes, h, w, scores[k] if scores else None)
                    result += regions
                    counts["holes_filled"] += not exact
                counts["predicted_regions"] += len(anns)
                prediction: dict[str, Any] = {"model_version": model, "result": result}
                if scores:
                    prediction["score"] = round(float(np.average(scores, weights=[a["area"] for a in anns])), 4)
                task["predictions"] = [prediction]
            if truth and split.has_annotations:
                result = []
                for ann in _truth_annotations(split, image):
                    regions, exact = _ls_regions(ann, split.classes, h, w, None)
                    result += regions
                    counts["holes_filled"] += not exact
                    counts["annotated_regions"] += 1
                task["annotations"] = [{"result": result, "ground_truth": False}]
            tasks.append(task)
            counts["images"] += 1
            bar.update(step, advance=1)
    return tasks, counts


# ------------------------------------------------------------------------------------------------------ CVAT


def cvat_coco(
    split: CocoSplit, pred: PredictionFolder | None, *, flagged: dict[int, list[IssueRecord]] | None = None
) -> tuple[dict, dict]:
    """A COCO 1.0 file for CVAT: the predicted regions (with a prediction folder) or the split's annotations."""
    if pred is None and not split.has_annotations:
        raise TrashsegError(f"{split.path}: no annotations and no prediction folder: nothing to export")
    images = _chosen_images(split, pred, flagged)
    with_probs = pred is not None and pred.meta().has_probs
    anns: list[dict] = []
    with progress_bar() as bar:
        step = bar.add_task("export: CVAT COCO", total=len(images), rate="-")
        for image in images:
            if pred is not None:
                found, scores = _predicted_annotations(pred, image, len(anns) + 1, with_probs)
                for ann, score in zip(found, scores, strict=True):
                    ann["attributes"] = {"score": round(score, 4)}
                anns += found
            else:
                anns += _truth_annotations(split, image)
            bar.update(step, advance=1)
    what = (
        f"predictions of {model_id(pred.meta().source or str(pred.root))}"
        if pred is not None
        else f"annotations of {split.path.name}"
    )
    coco = {
        "info": {"description": f"trashseg: {what}"},
        "licenses": [],
        "images": [{k: img[k] for k in ("id", "file_name", "height", "width")} for img in images],
        "categories": coco_categories(split.classes),
        "annotations": anns,
    }
    return coco, {"images": len(images), "annotations": len(anns)}


def write_labelling(
    split: CocoSplit,
    pred: PredictionFolder | None,
    out: Path,
    fmt: str,
    *,
    truth: bool = True,
    flagged: Path | None = None,
    image_url: str = LOCAL_FILES,
) -> dict:
    """Write `out` (and, for Label Studio, ``label_config.xml`` beside it); returns counts and paths.

    `truth`: Label Studio tasks carry the annotations beside the predictions; a CVAT file holds one set, the
    annotations instead of the predictions."""
    issues = read_flagged(flagged) if flagged is not None else None
    if fmt == "label-studio":
        tasks, counts = label_studio_tasks(split, pred, truth=truth, flagged=issues, image_url=image_url)
        config = out.parent / "label_config.xml"
        atomic_write_text(config, label_studio_config(split.classes))
        atomic_write_json(out, tasks)
        return {**counts, "tasks": str(out), "label_config": str(config)}
    if fmt == "cvat":
        coco, counts = cvat_coco(split, None if truth else pred, flagged=issues)
        atomic_write_json(out, coco)
        return {**counts, "coco": str(out)}
    raise TrashsegError(f"--format {fmt!r}: choose label-studio or cvat")
