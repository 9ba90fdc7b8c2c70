"""Raw images in: ``trashseg predict MODEL --images DIR_OR_GLOB`` on a folder of photos that comes with no COCO file.

The photos become a split like any other: ``images.json`` in the prediction folder lists them in the COCO layout
without annotations (file names relative to the folder or the pattern's fixed part, sizes upright), and
``meta.json`` points at it, so ``overlay``, ``crf`` and ``ensemble`` work on the folder as on a dataset's.
Raw photos are read upright by their EXIF orientation (``info.orientation: exif`` in the list; a dataset's pixels
are used as stored, see ``trashseg.data.images``). A file that cannot be used (not an image, corrupt, over
``data.max_pixels``) never stops the folder: it is left out, and named at the end (``UnreadableImages``).
A video file's kept frames become such photos as they are decoded (``trashseg.infer.video``).
"""

from __future__ import annotations

import glob
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from trashseg.config import Config
from trashseg.data.coco import CocoSplit, load_split, read_json
from trashseg.data.images import ImageError, upright_size
from trashseg.errors import NoImagesFound, TrashsegError, UnreadableImages
from trashseg.fileio import atomic_write_json, remove_stale_temps
from trashseg.infer.folder import IMAGE_LIST, PredictionFolder
from trashseg.infer.predict import Refiner, predict_split
from trashseg.infer.video import (
    FRAMES,
    MAX_DISK_GB,
    READ_AHEAD,
    VIDEO_SUFFIXES,
    Frame,
    FrameReader,
    FrameStride,
    is_video,
    read_ahead,
)
from trashseg.models.segmenter import InferenceModel
from trashseg.paths import escape

SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def visible(path: Path, root: Path) -> bool:
    """No hidden part under `root`: hidden files are a writer's temporaries or a tool's own, never photos."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def find_images(spec: str | Path, exclude: Path | None = None) -> tuple[Path, list[Path]]:
    """(root, image files under it, sorted). `spec` is a folder (searched recursively, hidden files and folders
    skipped) or a glob pattern (``**`` recursive), whose root is its leading part without wildcards. Files inside
    `exclude` (the prediction folder, when it lies inside the photos' folder) are not inputs."""
    spec = str(spec)
    parts = Path(spec).parts
    if any(c in spec for c in "*?["):
        fixed = parts[: next(i for i, p in enumerate(parts) if any(c in p for c in "*?["))]
        root = Path(*fixed) if fixed else Path(".")
        candidates = [Path(p) for p in glob.glob(spec, recursive=True)]
    elif Path(spec).is_dir():
        root = Path(spec)
        candidates = list(root.rglob("*"))
    else:
        raise NoImagesFound(f"{spec}: no such folder, and not a pattern such as 'photos/*.jpg'")
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p
        for p in candidates
        if p.suffix.lower() in SUFFIXES
        and p.is_file()
        and visible(p, root)
        and not (skip and p.resolve().is_relative_to(skip))
    )
    if not files:
        raise NoImagesFound(f"{spec}: no image files found (looked for {', '.join(SUFFIXES)})")
    return root, files


def list_images(
    root: Path,
    files: list[Path],
    out: Path,
    classes: list[str],
    *,
    info: dict,
    max_pixels: int,
    allow_external_links: bool = False,
    extra: dict[Path, dict] | None = None,
) -> tuple[CocoSplit, dict[str, str]]:
    """Write ``out/images.json`` for the usable `files` (under `root`) and load it as a split; returns it and the
    files refused from their header ({file_name: reason}). `info` goes into the list's ``info``, `extra` into an
    image's entry (a video frame's index and time). Nothing is written when no image is usable."""
    images: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for path in files:
        name = path.relative_to(root).as_posix()
        if found := escape(root, name, allow_external_links):
            refused[name] = f"{path}: {found[1]} (--set data.allow_external_links=true to follow it)"
            continue
        try:
            width, height = upright_size(path, max_pixels)
        except ImageError as exc:
            refused[name] = str(exc)
            continue
        images.append(
            {"id": len(images) + 1, "file_name": name, "width": width, "height": height, **(extra or {}).get(path, {})}
        )
    if not images:
        raise unreadable_error({"predicted": 0, "skipped": 0, "unreadable": refused}, out)
    path = out / IMAGE_LIST
    atomic_write_json(
        path,
        {
            "info": {**info, "orientation": "exif"},
            "images": images,
            "categories": [{"id": i, "name": c} for i, c in enumerate(classes)],
        },
    )
    return load_split(path, root, classes, max_pixels=max_pixels, allow_external_links=allow_external_links), refused


def _check_same_job(out: Path, video: dict | None) -> None:
    """A folder that holds predictions of a dataset split must not get an image list written into it (predict
    would then refuse the job, with the list already changed), nor one of a video's frames taken otherwise (other
    file or stride: masks of frames no longer listed would stay), nor photos beside a video's frames."""
    folder = PredictionFolder(out)
    listed = out / IMAGE_LIST
    if folder.meta_path.exists() and folder.meta().split != str(listed.resolve()):
        raise TrashsegError(
            f"{out} already holds predictions of {folder.meta().split}; use another --out for a folder of images"
        )
    old = video
    if listed.exists():  # the list of an earlier run: its info says which video, if any, and how
        listed_video = folder.image_list().info.video
        old = listed_video.model_dump() if listed_video else None
    if old != video:
        raise TrashsegError(
            f"{out} already holds predictions of {_job(old)}, not of {_job(video)}; use another "
            "--out, or delete the folder to start over"
        )


def _job(video: dict | None) -> str:
    if video is None:
        return "a folder of photos"
    return f"{video['file']} (--every {video['every']}, --max-frames {video['max_frames']})"


def unreadable_error(stats: dict, out: Path) -> UnreadableImages:
    """The error that ends a run which left files out: each named with its reason, after the counts."""
    bad = stats["unreadable"]
    good = stats["predicted"] + stats["skipped"]
    where = f"the other {good} are predicted in {out}" if good else "no image could be predicted"
    return UnreadableImages(
        f"{len(bad)} of {good + len(bad)} image file(s) could not be used and were skipped "
        f"({where}):\n" + "\n".join(f"  {reason}" for reason in bad.values())
    )


def predict_images(
    model: InferenceModel,
    spec: str | Path,
    out: Path,
    *,
    cfg: Config,
    save_probs: bool = False,
    refine: Refiner | None = None,
    objects: bool = False,
    min_area: int = 0,
    device: str = "cpu",
    workers: int = 2,
    stride: FrameStride | None = None,
    max_disk_gb: float = MAX_DISK_GB,
) -> dict:
    """Predict every usable image of `spec` (a folder or pattern of photos, or a video's frames kept by `stride`,
    at most `max_disk_gb` of them on disk: 0 for no limit) into the prediction folder `out` (resumable, like a
    split; the options are ``predict_split``'s). Returns predict's counts, ``unreadable`` ({file_name: reason}) for
    the files left out (see `unreadable_error`) and, for a video, ``video_problem`` when it breaks off before its
    end (its frames up to there are predicted) and ``video_stopped`` when it stopped at the disk budget."""
    options: dict[str, Any] = {
        "save_probs": save_probs,
        "refine": refine,
        "objects": objects,
        "min_area": min_area,
        "device": device,
        "workers": workers,
        "skip_unreadable": True,
    }
    created = not out.exists()
    try:
        if is_video(spec):
            return _predict_video(model, Path(spec), out, cfg, stride or FrameStride(), max_disk_gb, options)
        if stride is not None:
            raise TrashsegError(
                f"--every and --max-frames are for a video file; {spec} is not one ({', '.join(VIDEO_SUFFIXES)})"
            )
        split, refused = _photos(spec, out, model.classes, cfg)
        stats = predict_split(model, split, out, cfg=cfg.infer, **options)
        _unlist(split, stats["unreadable"], out)
        return {**stats, "unreadable": {**refused, **stats["unreadable"]}}
    finally:
        if created and not PredictionFolder(out).names():
            shutil.rmtree(out, ignore_errors=True)  # a run that wrote no mask leaves no folder behind


def _unlist(split: CocoSplit, failed: dict[str, str], out: Path) -> None:
    """Images that decoded badly after a good header leave the list, so crf / overlay never look for them."""
    if failed and out.exists():
        kept = [img for img in split.images if img["file_name"] not in failed]
        atomic_write_json(split.path, {**read_json(split.path), "images": kept})


def _photos(spec: str | Path, out: Path, classes: list[str], cfg: Config) -> tuple[CocoSplit, dict[str, str]]:
    """The split of the photos of `spec`, and the files refused from their header."""
    root, files = find_images(spec, out)
    _check_same_job(out, None)
    return list_images(
        root,
        files,
        out,
        classes,
        max_pixels=cfg.data.max_pixels,
        allow_external_links=cfg.data.allow_external_links,
        info={"description": f"images listed by trashseg predict --images {spec}"},
    )


def _predict_video(
    model: InferenceModel,
    video: Path,
    out: Path,
    cfg: Config,
    stride: FrameStride,
    max_disk_gb: float,
    options: dict[str, Any],
) -> dict:
    """Predict a video's kept frames as they are decoded: in chunks that double in size (the first one batch, so
    the first masks come out at once; doubling keeps the list's rewrites and predict's start-up to a logarithmic
    count), while the next frames decode in a thread a bounded number ahead. ``images.json`` lists the frames
    decoded so far after each chunk, so a folder stopped half-way is one like any other."""
    job = {"file": str(video.resolve()), "every": stride.every, "max_frames": stride.limit}
    _check_same_job(out, job)
    remove_stale_temps(out / FRAMES)  # frames a killed run left half-written
    reader = FrameReader(
        video, out / FRAMES, stride, cfg.data.max_pixels, int(max_disk_gb * 1e9) if max_disk_gb > 0 else None
    )
    frames: list[Frame] = []
    failed: dict[str, str] = {}
    refused: dict[str, str] = {}
    totals = {"predicted": 0, "skipped": 0, "seconds": 0.0}
    split: CocoSplit | None = None
    for chunk in _doubling(read_ahead(reader, READ_AHEAD), cfg.infer.batch_size):
        frames += chunk
        split, refused = list_images(
            out / FRAMES,
            [f.path for f in frames if f.path.relative_to(out / FRAMES).as_posix() not in failed],
            out,
            model.classes,
            extra={f.path: {"frame_index": f.index, "time": f.seconds} for f in frames},
            max_pixels=cfg.data.max_pixels,
            allow_external_links=cfg.data.allow_external_links,
            info={"description": f"frames of {video} listed by trashseg predict --images", "video": job},
        )
        new = {f.path.relative_to(out / FRAMES).as_posix() for f in chunk}
        part = replace(split, images=[image for image in split.images if image["file_name"] in new])
        stats = predict_split(model, part, out, cfg=cfg.infer, **options)
        failed |= stats["unreadable"]
        totals = {key: totals[key] + stats[key] for key in totals}
    assert split is not None  # the reader raises VideoError when not one frame can be read
    _unlist(split, failed, out)
    seconds = totals["seconds"]
    result = {
        **totals,
        "img_per_s": totals["predicted"] / seconds if totals["predicted"] and seconds else None,
        "unreadable": {**refused, **failed},
    }
    problems = {"video_problem": reader.problem, "video_stopped": reader.stopped}
    return {**result, **{key: text for key, text in problems.items() if text}}


def _doubling(items: Iterator[Frame], first: int) -> Iterator[list[Frame]]:
    """`items` in lists of `first`, then each as long as all before it together."""
    chunk: list[Frame] = []
    size, total = max(1, first), 0
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            total += len(chunk)
            chunk, size = [], max(size, total)
    if chunk:
        yield chunk
