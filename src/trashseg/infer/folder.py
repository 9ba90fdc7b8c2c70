"""The prediction folder, the contract between predict, CRF, ensembles, pseudo-labels, submit and evaluate.

``meta.json`` (classes, source, TTA, val mIoU of the source when known), ``masks/<file_name>.png`` (class ids,
the image's own size) and, optionally, ``probs/<file_name>.npz`` (float16 C×H×W) and
``objects/<file_name>.json`` (each class's connected regions, ``infer.objects``; their settings in meta.json).
Keyed by the dataset's ``file_name``, so folders from different models line up image by image. Every file is
written atomically and an image whose outputs exist is skipped by a rerun (resume), which first removes what a
killed run left half-written.
Outputs are refused where a ``file_name`` would put them outside the folder (``../x.jpg``, an absolute path).
A folder predicted from raw photos (``predict --images``) also holds ``images.json``, their list in the COCO
layout without annotations, which its ``meta.json`` names as the split.
A prediction folder may come from someone else: its ``meta.json`` is read as a bounded, validated
``PredictionMeta``, and the member folders of ensembles and k-fold folders are followed only so far.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from trashseg.config import IGNORE_INDEX, validate_as
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_open, atomic_write_json, jsonable, read_json_bounded, remove_stale_temps
from trashseg.paths import inside

IMAGE_LIST = "images.json"
MAX_IMAGE_LIST_BYTES = 256 << 20  # a video's 100k frames are ~20 MB of images.json
MAX_META_BYTES = 1 << 20  # a meta.json of 255 classes and 256 member paths is ~100 kB
MAX_MEMBERS = 256  # member folders listed in one meta.json
MAX_MEMBER_DEPTH = 8  # ensembles of k-fold folders of ...: 2 levels in practice
MAX_MEMBER_VISITS = 1024  # folders visited following members (a folder may be listed by several others)

Name = Annotated[str, StringConstraints(max_length=1000)]
PathText = Annotated[str, StringConstraints(max_length=4096)]


class VideoJob(BaseModel):
    """How a video's frames were kept (``info.video`` of images.json): a rerun must keep them the same way."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: PathText
    every: int = Field(ge=1)
    max_frames: int | None = Field(None, ge=1)


class ImageListInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    orientation: Literal["exif"] | None = None
    video: VideoJob | None = None


class ImageList(BaseModel):
    """``images.json``, the photos of ``predict --images`` in the COCO layout: its ``info`` is checked here, its
    images as any COCO split's when it is loaded as one (``data.coco``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    info: ImageListInfo = Field(default_factory=ImageListInfo)
    images: list[dict[str, Any]]


class PredictionMeta(BaseModel):
    """``meta.json``: what predicted the folder (classes, source, split, TTA, ...), the one definition that every
    stage reads. Keys not listed here are kept as written (extra="allow") but read by nobody; each stage that
    writes a folder states its own keys (`init`), and a resume must state the same ones."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)

    classes: list[Name] = Field(min_length=2, max_length=IGNORE_INDEX)  # class ids are 8-bit, 255 = ignore
    source: PathText | None = None  # a checkpoint, an ONNX file, "ensemble", or the folder a CRF refined
    engine: str | None = Field(None, max_length=32)  # what ran the network (infer.engine), when recorded
    split: PathText | None = None  # the COCO file predicted (resolved), images.json for photos
    data_root: PathText | None = None
    has_probs: bool = False
    val_miou: float | None = Field(None, ge=0, le=1)  # of the source model, when known: ensembles break ties by it
    members: list[PathText] = Field(default_factory=list, max_length=MAX_MEMBERS)  # ensemble, k-fold folders
    image_size: int | list[int] | None = None
    tta: dict[str, Any] | None = None
    crf: dict[str, Any] | None = None
    objects: dict[str, Any] | None = None

    def check_classes(self, classes: list[str], folder: Path, theirs: str, fix: str = "") -> None:
        """Probabilities and masks are indexed by class: read with another class list they would mean other
        classes, silently."""
        if self.classes != classes:
            raise TrashsegError(
                f"{folder}: predicted with {len(self.classes)} classes {self.classes} but {theirs} has "
                f"{len(classes)} {classes}{fix}"
            )

    def record(self) -> dict[str, Any]:
        """The keys as written, for a stage that derives its folder's meta from this one (CRF)."""
        return self.model_dump(mode="json", exclude_unset=True)


def _write_npz(fh: IO[bytes], probs: np.ndarray) -> None:
    """What ``np.savez_compressed(fh, probs=...)`` writes (``np.load`` reads it back), at zlib level 1 instead of
    numpy's fixed 6: 1.7x faster for 2% more bytes on 17×270×480 float16 (0.07 s against 0.12 s per image on a
    2-core CPU), which was most of `predict --save-probs`'s time on CPU."""
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("probs.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, probs, allow_pickle=False)


class PredictionFolder:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- meta -------------------------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "meta.json"

    def meta(self) -> PredictionMeta:
        """The folder's meta.json, validated: a named error names the file and each wrong field."""
        try:
            data = read_json_bounded(self.meta_path, MAX_META_BYTES, "a trashseg meta.json")
        except FileNotFoundError:
            raise TrashsegError(f"{self.root}: not a prediction folder (no meta.json)") from None
        return validate_as(PredictionMeta, data, str(self.meta_path), what="prediction folder meta")

    def init(self, meta: dict[str, Any]) -> PredictionMeta:
        """Start or resume a folder; returns the meta now on disk.

        A resume must be the same job (classes, source, split, TTA, CRF, members…): otherwise old and new outputs
        would mix under a meta.json that describes only the last run. ``has_probs`` only grows: a folder that has
        probabilities keeps writing them, so its readers (CRF, soft voting, pseudo-labels) never find a gap.
        """
        meta = validate_as(PredictionMeta, jsonable(meta), str(self.meta_path), what="prediction folder meta").record()
        if self.meta_path.exists():
            old = self.meta().record()
            changed = [k for k in sorted(old.keys() | meta.keys()) if k != "has_probs" and old.get(k) != meta.get(k)]
            if changed:
                key = changed[0]
                raise TrashsegError(
                    f"{self.root} already holds predictions made with {key}={old.get(key)!r}; this "
                    f"run has {key}={meta.get(key)!r}. Use another --out, or delete the folder to "
                    "start over"
                )
            meta["has_probs"] = bool(old.get("has_probs") or meta.get("has_probs"))
            remove_stale_temps(self.root)
        atomic_write_json(self.meta_path, meta)
        return PredictionMeta.model_validate(meta)

    def image_list(self) -> ImageList:
        """The folder's images.json (``predict --images``), bounded and validated."""
        path = self.root / IMAGE_LIST
        try:
            data = read_json_bounded(path, MAX_IMAGE_LIST_BYTES, "the images.json of `trashseg predict --images`")
        except FileNotFoundError:
            raise TrashsegError(f"{path}: not found (written by `trashseg predict --images`)") from None
        return validate_as(ImageList, data, str(path), what="image list")

    def split_key(self) -> tuple[str | None, str | None]:
        """(split file, dataset root) that the folder was predicted on, comparable between folders: each folder of
        photos has its own copy of their list, so there the list's name stands for its path."""
        meta = self.meta()
        split = meta.split
        if split is not None and split == str((self.root / IMAGE_LIST).resolve()):
            split = IMAGE_LIST
        return split, meta.data_root

    def models(self) -> list[tuple[PredictionFolder, PredictionMeta]]:
        """The folders of single models behind this one (itself when it lists no members), through ensembles,
        k-fold and out-of-fold folders: a folder that lists itself (directly or not), or members nested deeper
        than MAX_MEMBER_DEPTH, is a named error instead of endless recursion."""
        found: list[tuple[PredictionFolder, PredictionMeta]] = []
        visits = 0

        def walk(folder: PredictionFolder, path: tuple[Path, ...]) -> None:
            nonlocal visits
            visits += 1
            where = " → ".join(str(p) for p in path)
            if visits > MAX_MEMBER_VISITS:
                raise TrashsegError(f"{self.meta_path}: its members list more than {MAX_MEMBER_VISITS} folders")
            meta = folder.meta()
            if not meta.members:
                found.append((folder, meta))
            for member in map(Path, meta.members):
                if member.resolve() in path:
                    raise TrashsegError(f"{folder.meta_path}: lists {member} as its own member ({where} → {member})")
                if len(path) > MAX_MEMBER_DEPTH:
                    raise TrashsegError(f"{self.meta_path}: members nested deeper than {MAX_MEMBER_DEPTH} ({where})")
                walk(PredictionFolder(member), (*path, member.resolve()))

        walk(self, (self.root.resolve(),))
        return found

    @property
    def classes(self) -> list[str]:
        return self.meta().classes

    # -- per image ----------------------------------------------------------------------------------------------
    def mask_path(self, file_name: str) -> Path:
        return inside(self.root, "masks", f"{file_name}.png")

    def probs_path(self, file_name: str) -> Path:
        return inside(self.root, "probs", f"{file_name}.npz")

    def objects_path(self, file_name: str) -> Path:
        return inside(self.root, "objects", f"{file_name}.json")

    def done(self, file_name: str, with_probs: bool, with_objects: bool = False) -> bool:
        return (
            self.mask_path(file_name).exists()
            and (not with_probs or self.probs_path(file_name).exists())
            and (not with_objects or self.objects_path(file_name).exists())
        )

    def write(
        self,
        file_name: str,
        mask: np.ndarray,
        probs: np.ndarray | None = None,
        objects: list[dict[str, Any]] | None = None,
    ) -> None:
        """Probabilities and objects first, mask last: a mask on disk means the image is complete."""
        if probs is not None:
            with atomic_open(self.probs_path(file_name), "wb") as fh:
                _write_npz(fh, probs.astype(np.float16))
        if objects is not None:
            atomic_write_json(
                self.objects_path(file_name),
                {"file_name": file_name, "height": mask.shape[0], "width": mask.shape[1], "objects": objects},
            )
        ok, png = cv2.imencode(".png", mask.astype(np.uint8))
        if not ok:
            raise TrashsegError(
                f"{self.mask_path(file_name)}: could not encode the mask of image {file_name} (shape {mask.shape})"
            )
        with atomic_open(self.mask_path(file_name), "wb") as fh:  # the mask last and synced: it marks "done"
            fh.write(png.tobytes())

    def write_probs(self, file_name: str, probs: np.ndarray, keep: bool) -> None:
        """The mask as the argmax of `probs` (C×H×W), and the probabilities themselves when `keep`."""
        self.write(file_name, probs.argmax(0).astype(np.uint8), probs if keep else None)

    def names(self) -> list[str]:
        """File names of the images with a finished mask, sorted; hidden files (a killed write's temp) skipped."""
        masks = self.root / "masks"
        found = (p.relative_to(masks) for p in masks.rglob("*.png"))
        return sorted(r.as_posix()[: -len(".png")] for r in found if not any(s.startswith(".") for s in r.parts))

    def mask(self, file_name: str) -> np.ndarray:
        path = self.mask_path(file_name)
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise TrashsegError(f"{path}: prediction mask missing or unreadable (image {file_name})")
        return mask

    def objects(self, file_name: str) -> list[dict[str, Any]]:
        path = self.objects_path(file_name)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["objects"]
        except FileNotFoundError:
            raise TrashsegError(f"{path}: no objects for image {file_name}; predict with --objects") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise TrashsegError(f"{path}: unreadable objects ({exc})") from None

    def probs(self, file_name: str) -> np.ndarray:
        path = self.probs_path(file_name)
        try:
            with np.load(path) as data:
                return data["probs"].astype(np.float32)
        except FileNotFoundError:
            raise TrashsegError(f"{path}: no probabilities for image {file_name}; predict with --save-probs") from None
        except (ValueError, KeyError, OSError) as exc:
            raise TrashsegError(f"{path}: unreadable probabilities ({exc})") from None
