"""YAML recipes → validated config objects.

A recipe may inherit from others with ``_base_: [file.yaml, ...]`` (paths relative to the recipe, as in
mmsegmentation); later files and ``--set key=value`` overrides win, and ``_delete_: true`` in a section
replaces the inherited section instead of merging into it. The recipes ship inside the package
(``trashseg/configs``, which the checkout's ``configs/`` links to), so a recipe can be named (``upernet_swin_b``,
``data/trashcan``) wherever trashseg is installed. Unknown or mistyped keys are errors that
name the dotted key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from trashseg.errors import TrashsegError

SectionT = TypeVar("SectionT", bound=BaseModel)

RECYCLING_CLASSES: tuple[str, ...] = (
    "Background",
    "General trash",
    "Paper",
    "Paper pack",
    "Metal",
    "Glass",
    "Plastic",
    "Styrofoam",
    "Plastic bag",
    "Battery",
    "Clothing",
)

RECIPES = Path(__file__).parent / "configs"  # package data: a real folder in the wheel and in site-packages
IGNORE_INDEX = 255
MAX_PIXELS = 40_000_000  # a tiny PNG can declare a huge image: 11 classes of probabilities at 40 MP are 1.8 GB


def parse_size(value: Any, floor: int = 32) -> int | tuple[int, int]:
    """S, or [H, W] as a (height, width) tuple; ValueError otherwise. One message for both spellings of a size,
    instead of pydantic's one error per branch of the union."""
    sides = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(sides) == (1 if isinstance(value, int) else 2) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= floor for s in sides
    ):
        return value if isinstance(value, int) else (sides[0], sides[1])
    raise ValueError(f"expected a side S (S×S) or [height, width], each an integer >= {floor}; got {value!r}")


# S for S×S, or (height, width) as mmseg's crop_size: wide video frames keep their shape at the same pixel count
Size = Annotated[int | tuple[int, int], BeforeValidator(parse_size)]
CacheSize = Annotated[int | tuple[int, int], BeforeValidator(partial(parse_size, floor=1))]  # any, unlike the network's


def hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a size given as S (square) or (H, W)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class Section(BaseModel):
    """allow_inf_nan=False: a NaN or infinite setting (``--set train.grad_clip=.nan``) is refused by its key, where
    it would otherwise train or vote on NaN silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def check_class_names(v: list[str]) -> list[str]:
    """A model's class list, as data.classes and an exported model's meta give it."""
    if len(v) < 2:
        raise ValueError("needs at least 2 classes (index 0 = background)")
    if len(v) > 255:  # first: the duplicate search below is quadratic
        raise ValueError("at most 255 classes (masks are uint8, 255 = ignore)")
    if len(set(v)) != len(v):
        dup = sorted({c for c in v if v.count(c) > 1})
        raise ValueError(f"duplicate class names {dup}")
    return v


class DataConfig(Section):
    """Where the dataset lives and how its COCO files map onto class indices."""

    root: Path | None = None
    classes: list[str] = Field(default_factory=lambda: list(RECYCLING_CLASSES))
    train: str = "train.json"
    val: str = "val.json"
    test: str = "test.json"
    extra: list[Path] = Field(default_factory=list)  # pseudo-label datasets (`trashseg pseudo`) mixed into train
    extra_ratio: float = Field(0.3, ge=0, lt=1)  # share of each epoch's samples drawn from `extra`
    folds_dir: str = "folds"  # where `trashseg split` wrote fold{k}_train/val.json (relative to root, or absolute)
    cache_dir: Path | None = None  # default $TRASHSEG_CACHE or ~/.cache/trashseg
    cache_images: bool = True  # keep decoded images as .npy (see trashseg.data.cache)
    cache_size: CacheSize | None = None  # presize images/masks to N×N (or H×W) in the cache; null keeps their own size
    ignore_index: int = IGNORE_INDEX
    max_pixels: int = Field(MAX_PIXELS, ge=1)  # images declaring more (read from the header) are refused, undecoded
    allow_external_links: bool = False  # follow symbolic links that lead out of the dataset folder

    @field_validator("classes")
    @classmethod
    def _classes_valid(cls, v: list[str]) -> list[str]:
        return check_class_names(v)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def root_dir(self) -> Path:
        if self.root is None:
            raise TrashsegError("no dataset given: pass --data DIR (or set data.root in the config)")
        return self.root

    def split_path(self, split: str) -> Path:
        """`train`/`val`/`test` name the configured files; anything else is a file under the root."""
        return self.root_dir() / (getattr(self, split) if split in ("train", "val", "test") else split)


class ModelConfig(Section):
    """An architecture and an encoder by name, as in smp: ``create_model`` looks both up in registries."""

    arch: str = "Unet"  # smp's (Unet, UnetPlusPlus, FPN, PAN, DeepLabV3Plus, UPerNet, Segformer, ...) or OCRNet, FCN
    encoder: str = "resnet18"  # smp encoder name or timm's as tu-<name>
    weights: str | None = None  # null (random init), a library weights name (imagenet, ...), or a local file
    params: dict[str, Any] = Field(default_factory=dict)  # extra keyword arguments for the architecture
    aux_loss_weight: float = Field(0.4, ge=0)  # for architectures with an auxiliary head (OCRNet)
    # Input normalisation (0-1 scale, RGB); null = what the encoder's pretrained weights expect. Training resolves
    # and stores it, so predict, export and serve use what the model was trained with.
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    # Added to the logits at inference, one value per class; null = none. Training fills it from
    # loss.logit_adjustment and stores it, so predict, export and serve apply it too.
    logit_bias: list[float] | None = None

    @field_validator("std")
    @classmethod
    def _std_positive(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and not all(s > 0 for s in v):
            raise ValueError("every std must be > 0")
        return v


class CopyPasteConfig(Section):
    """Minority copy-paste (the seed's "YohanMix"): paste instances of rare classes from other training images."""

    prob: float = Field(0.0, ge=0, le=1)  # chance that a sample receives pasted objects
    classes: list[str] | None = None  # default: the `rarest` classes by pixel share in the training masks
    rarest: int = Field(3, ge=1)
    max_objects: int = Field(3, ge=1)
    scale: tuple[float, float] = (0.75, 1.25)


class AugmentConfig(Section):
    preset: Literal["seed", "seed_photometric", "light", "none"] = "seed"
    image_size: Size = 512  # images are resized to S×S or [H, W] (validation and inference too)
    crop_size: Size | None = None  # train on random C×C or [H, W] crops at that scale (mmseg's crop_size)
    object_crop_prob: float = Field(0.0, ge=0, le=1)  # share of those crops centred on labelled foreground
    copy_paste: CopyPasteConfig = Field(default_factory=CopyPasteConfig)
    cutmix_prob: float = Field(0.0, ge=0, le=1)


class LossConfig(Section):
    """A weighted sum of losses; a weight of 0 switches a term off."""

    ce: float = Field(1.0, ge=0)
    dice: float = Field(0.0, ge=0)
    focal: float = Field(0.0, ge=0)
    lovasz: float = Field(0.0, ge=0)
    ohem: float = Field(0.0, ge=0)  # cross-entropy over the hard pixels only (mmseg's OHEM pixel sampler)
    ohem_thresh: float = Field(0.7, gt=0, lt=1)  # a pixel is hard while its true-class probability is below this
    ohem_min_kept: float = Field(0.1, gt=0, le=1)  # but keep at least this share of the batch's labelled pixels
    class_weights: Literal["none", "inverse", "sqrt_inverse"] = "none"
    # How the class weights act in training. pixel: each pixel's loss is scaled by its class's weight. margin: every
    # pixel counts the same and the weights become logit margins (Menon et al.'s logit-adjusted loss: the loss sees
    # logits − log(weight)); either way the raw logits learn p(c|x)·weight_c, so logit_adjustment means the same.
    weighting: Literal["pixel", "margin"] = "pixel"
    # At inference, take back this share of the class weights' pull towards rare classes: logits − τ·log(weight)
    # (logit adjustment, Menon et al. 2021). 0 predicts as trained; 1 undoes the weights' shift of the prior.
    logit_adjustment: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _adjusts_class_weights(self) -> LossConfig:
        if self.logit_adjustment and self.class_weights == "none":
            raise ValueError("logit_adjustment takes back class weights: set class_weights too, or leave it at 0")
        if self.weighting == "margin" and self.class_weights == "none":
            raise ValueError("weighting: margin turns class weights into margins: set class_weights too")
        return self


class OptimConfig(Section):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(6e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    momentum: float = 0.9
    schedule: Literal["cosine", "poly", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)  # linear warmup, in (fractional) epochs
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    poly_power: float = 0.9
    encoder_lr_mult: float = Field(1.0, ge=0)  # encoder lr = lr × this (mmseg's backbone lr_mult); < 1 fine-tunes


class TrainConfig(Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    num_workers: int = Field(2, ge=0)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    accumulate: int = Field(1, ge=1)
    grad_clip: float | None = None
    ema_decay: float | None = Field(None, gt=0, lt=1)
    channels_last: bool = True
    compile: bool = False
    seed: int = 42
    early_stopping: int | None = Field(None, ge=1)  # patience in validations without a better val mIoU
    balanced_sampling: float = Field(0.0, ge=0, le=1)  # 0 = uniform; 1 = images drawn by their rarest class
    devices: int | str = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    # a list default is copied per instance by pydantic
    loggers: list[Literal["csv", "tensorboard", "wandb", "mlflow"]] = ["csv", "tensorboard"]
    val_every: int = Field(1, ge=1)  # validate every N epochs
    max_steps_per_epoch: int | None = None  # cap an epoch (quick runs, time-boxed benchmarks)
    time_limit_minutes: float | None = Field(None, gt=0)  # stop cleanly (checkpoints kept) after this much training
    # The learning-rate decay ends at time_limit_minutes or after `epochs`, whichever comes first, so a time-boxed
    # recipe finishes its schedule inside the budget on a slow machine and uses the whole budget on a fast one
    # (`epochs` then only caps the run). Single-process only: each process's clock would set its own rate.
    fit_schedule_to_time_limit: bool = False
    freeze_encoder_epochs: int = Field(0, ge=0)  # train only the decoder for the first N epochs (pretrained encoder)
    freeze_bn: bool = False  # encoder BatchNorm in eval mode: keeps pretrained statistics when batches are tiny
    frozen_stages: int = Field(0, ge=0, le=5)  # encoder layers at 1/2 … 1/2^N resolution never train (mmseg's)

    @model_validator(mode="after")
    def _last_epoch_is_validated(self) -> TrainConfig:
        if self.epochs % self.val_every:
            raise ValueError(
                f"val_every ({self.val_every}) must divide epochs ({self.epochs}) so that the last epoch is validated"
            )
        if self.fit_schedule_to_time_limit and self.time_limit_minutes is None:
            raise ValueError("fit_schedule_to_time_limit needs train.time_limit_minutes (the budget to fit)")
        return self


class InferConfig(Section):
    """Test-time settings: probabilities are averaged over every flip × scale at the image's own size."""

    hflip: bool = False
    vflip: bool = False
    scales: list[float] = Field(default_factory=lambda: [1.0])  # multiples of augment.image_size
    mode: Literal["resize", "slide"] = "resize"  # slide: S×S windows over the image at its own resolution
    overlap: float = Field(0.5, ge=0, lt=1)  # sliding-window overlap
    batch_size: int = Field(8, ge=1)
    precision: Literal["32", "bf16", "16"] = "32"  # autocast dtype: bf16 on GPU or CPU, 16 on GPU only
    # masks without probabilities: "probs" resizes the class probabilities to the image (bilinear) and takes the
    # argmax there; "labels" takes the argmax at network resolution and resizes the class ids (nearest), much
    # cheaper on CPU, but coarser at class borders: a perfect 256² model on TrashCan val scores mIoU 0.980 with
    # "probs" and 0.941 with "labels" (docs/benchmarks.md), so "probs" stays the default. One scale, resize mode only.
    mask_resize: Literal["probs", "labels"] = "probs"
    # what runs the network: torch (fp32), torch-bf16 (bf16 autocast), onnx (ONNX Runtime fp32: the .onnx given,
    # or the run's model.onnx), onnx-int8 (its int8 model from `export --int8`); auto: the fastest of those this
    # machine and model offer (models.engines.AUTO_ORDER, measured in docs/benchmarks.md)
    engine: Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"] = "auto"

    @field_validator("scales")
    @classmethod
    def _scales_positive(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("needs at least one scale, all > 0")
        return v

    def over(self, defaults: InferConfig) -> InferConfig:
        """These settings where someone stated them (config file, --set, a flag), ``defaults`` elsewhere: a run's
        own infer section is its default test-time recipe (as mmseg's ``test_cfg``), not the library's."""
        return defaults.model_copy(update={key: getattr(self, key) for key in self.model_fields_set})


class CRFConfig(Section):
    """Fully-connected CRF (Krähenbühl & Koltun) on softmax probabilities; kernel parameters as in pydensecrf."""

    iterations: int = Field(5, ge=1)
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    upscale: float = Field(1.0, ge=1.0)  # the seed's variant: run on probabilities upscaled by this factor
    workers: int = Field(2, ge=1)


# The TTA words every door understands (the Python API's ``tta=``, ``predict``/``serve --tta``, the web service's
# ``?tta=``) and the flips each adds: (hflip, vflip). One table, so the same word means the same views everywhere.
TTA_FLIPS: dict[str, tuple[bool, bool]] = {
    "none": (False, False),
    "hflip": (True, False),
    "vflip": (False, True),
    "hvflip": (True, True),
}
# Older spellings: "flip" is the horizontal flip, as mmseg's ``flip=True`` and as the web service always read it
# (the Python API read it as both flips before 0.2: that is "hvflip").
TTA_ALIASES = {"flip": "hflip"}


def tta_word(word: str) -> str:
    """The TTA word `word` means (an alias resolved); ValueError listing the words for any other."""
    word = TTA_ALIASES.get(word, word)
    if word not in TTA_FLIPS:
        aliases = ", ".join(f"{a} = {w}" for a, w in TTA_ALIASES.items())
        raise ValueError(f"tta={word!r}: unknown; one of {', '.join(TTA_FLIPS)} ({aliases})")
    return word


def tta_of(cfg: InferConfig) -> str:
    """The TTA word of an infer section's flips."""
    return next(word for word, flips in TTA_FLIPS.items() if flips == (cfg.hflip, cfg.vflip))


class ServeConfig(Section):
    """Limits of `trashseg serve`, so that no request, and no crowd of them, can take the server's memory or time.

    A request may choose its TTA (``?tta=hflip&scales=1,1.25``) within `tta`, `max_scales` and `max_scale`; the
    server's own infer section is the default and always allowed. At most `workers` inferences run at once and
    `queue` wait; more get 503. A request unanswered after `timeout` seconds gets 504.
    """

    tta: list[str] = ["none", "hflip"]  # TTA words (TTA_FLIPS); copied per instance by pydantic
    max_scales: int = Field(2, ge=1)  # how many TTA scales one request may ask for
    max_scale: float = Field(1.5, gt=0)  # the largest of them (cost grows with its square)
    workers: int = Field(1, ge=1)  # torch already spreads one image over every core
    queue: int = Field(8, ge=0)
    timeout: float = Field(60.0, gt=0)  # seconds, waiting included
    max_upload_mb: float = Field(32.0, gt=0)  # a 50-megapixel JPEG fits
    header_timeout: float = Field(10.0, gt=0)  # seconds for a request line and headers; slower clients are dropped
    max_connections: int = Field(64, ge=1)  # open connections; requests beyond get 503 from uvicorn

    @field_validator("tta")
    @classmethod
    def _tta_words(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(tta_word(word) for word in v))


class Config(Section):
    name: str = "default"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    crf: CRFConfig = Field(default_factory=CRFConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _one_logit_bias_per_class(self) -> Config:
        bias = self.model.logit_bias
        if bias is not None and len(bias) != self.data.num_classes:
            raise ValueError(
                f"model.logit_bias has {len(bias)} values but data.classes has {self.data.num_classes} classes"
            )
        return self


def _deep_merge(base: dict, override: dict) -> dict:
    """Nested dicts merge key by key; a dict holding ``_delete_: true`` replaces the inherited one instead (as in
    mmsegmentation), e.g. a recipe that swaps the architecture drops the base's ``model.params``."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict):
            inherited = out.get(key)
            keep = inherited if isinstance(inherited, dict) and value.get("_delete_") is not True else {}
            out[key] = _deep_merge(keep, {k: v for k, v in value.items() if k != "_delete_"})
        else:
            out[key] = copy.deepcopy(value)
    return out


# A config is data from anyone (a run folder's config.yaml travels with the run): what one may cost is bounded. The
# largest shipped recipe is 4 kB, 3 levels deep and inherits from 2 files.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32  # levels of nesting, aliases expanded
MAX_YAML_NODES = 100_000  # values, aliases expanded: a 630-byte "billion laughs" document expands to 10^9
MAX_YAML_FILES = 16  # files read for one recipe, its _base_ files and theirs (a diamond of bases reads one twice)
YAML_SUFFIXES = (".yaml", ".yml")


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses, before constructing anything, a document nested deeper than `max_depth` or
    whose aliases expand to more than MAX_YAML_NODES values. PyYAML has no such limits: its composer recurses once
    per level (a RecursionError at ~1000), and an alias is one shared node that the merge and pydantic walk again
    at every use, so ten aliases of ten aliases... cost exponential memory."""

    def __init__(self, stream: str, max_depth: int) -> None:
        super().__init__(stream)
        self.max_depth, self.depth = max_depth, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {self.max_depth} levels", problem_mark=self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: Any) -> Any:
        self._expanded(node, 1, {})
        return super().construct_document(node)

    def _expanded(self, node: Any, depth: int, seen: dict[int, tuple[int, int]]) -> tuple[int, int]:
        """(values, levels) under `node` with every alias expanded, each shared node counted once per use but walked
        once; an alias that contains itself is caught by the depth bound."""
        if id(node) in seen:
            size, height = seen[id(node)]
        else:
            if depth > self.max_depth:
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {self.max_depth} levels (aliases expanded)",
                    problem_mark=node.start_mark,
                )
            children = node.value if isinstance(node, yaml.SequenceNode) else []
            if isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            size, height = 1, 1
            for child in children:
                child_size, child_height = self._expanded(child, depth + 1, seen)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_YAML_NODES:
                    raise yaml.MarkedYAMLError(
                        problem=f"more than {MAX_YAML_NODES} values (aliases expanded)", problem_mark=node.start_mark
                    )
            seen[id(node)] = size, height
        if depth - 1 + height > self.max_depth:
            raise yaml.MarkedYAMLError(
                problem=f"nested deeper than {self.max_depth} levels (aliases expanded)", problem_mark=node.start_mark
            )
        return size, height


def load_yaml(text: str, source: str, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """Plain YAML data (a ``!!python/...`` tag is refused, never constructed) within the bounds above: the one
    loader every YAML of trashseg goes through. The error names `source`, the line and the problem, never the
    text: a file named by ``_base_`` may not be a config at all."""
    try:
        loader = _BoundedLoader(text, max_depth)  # its reader refuses control characters at once
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = "; ".join(text for text in (exc.context, exc.problem) if text)
        problem = re.sub(r" ?'(?!<|tag:)[^']*'", "", problem)  # quoted text is the file's: an alias, a character
        raise TrashsegError(f"{source}: invalid YAML: {problem}{where}") from None
    except yaml.YAMLError:  # the reader's
        raise TrashsegError(f"{source}: invalid YAML: not text (it holds a control character)") from None


def _read_yaml(path: Path) -> dict:
    if path.suffix.lower() not in YAML_SUFFIXES:
        raise TrashsegError(f"{path}: a config must be a YAML file ({' or '.join(YAML_SUFFIXES)})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise TrashsegError(f"config file not found: {path}") from None
    except OSError as exc:
        raise TrashsegError(f"{path}: cannot read the config ({exc.strerror})") from None
    if len(raw) > MAX_YAML_BYTES:
        raise TrashsegError(f"{path}: a config is at most {MAX_YAML_BYTES} bytes; this file is larger")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrashsegError(f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    data = load_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise TrashsegError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


def load_raw(path: str | Path, _seen: tuple[Path, ...] = (), _budget: list[int] | None = None) -> dict:
    """Read a recipe and everything it inherits from, merged, without validating. ``_base_`` names YAML files only,
    and at most MAX_YAML_FILES are read in all."""
    path = Path(path).resolve()  # a link is judged by what it leads to: x.yaml -> /etc/shadow is not YAML
    if path in _seen:
        raise TrashsegError(f"{path}: circular _base_ inheritance")
    budget = [MAX_YAML_FILES] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0:
        raise TrashsegError(f"{_seen[0]}: inherits from more than {MAX_YAML_FILES} files (_base_)")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise TrashsegError(f"{path}: _base_ must be a file name or a list of file names")
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, load_raw(path.parent / base, (*_seen, path), budget))
    return _deep_merge(merged, data)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` strings; values are parsed as YAML so numbers, lists and null work."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrashsegError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=10")
        node = raw
        parts = key.strip().split(".")
        if len(parts) >= MAX_YAML_DEPTH:
            raise TrashsegError(f"--set {key[:200]!r}: nested deeper than {MAX_YAML_DEPTH} levels")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TrashsegError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = _override_value(key.strip(), value, len(parts))
    return raw


def _override_value(key: str, value: str, depth: int) -> Any:
    """A --set value as plain YAML, through the loader every YAML goes through; it sits `depth` levels down."""
    try:
        return load_yaml(value, f"--set {key}", MAX_YAML_DEPTH - depth)
    except TrashsegError as exc:
        raise TrashsegError(
            f"--set {key}: {value[:200]!r} is not a plain YAML value ({str(exc).partition('invalid YAML: ')[2]}); "
            f"give a number, a string, a list like [a,b] or null, e.g. --set {key}=\"'text'\""
        ) from None


def validate(raw: dict, source: str = "config") -> Config:
    return validate_as(Config, raw, source)


def validate_as(kind: type[SectionT], raw: Any, source: str, what: str = "config") -> SectionT:
    """``raw`` as a ``kind`` (the whole config, one section, or another file's model), or an error naming
    ``source`` and each wrong key."""
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(root)"
            msg = "unknown key (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {key}: {msg}")
        raise TrashsegError(f"{source}: invalid {what}\n" + "\n".join(lines)) from None


def recipe_names() -> list[str]:
    """Names of the shipped recipes, as `recipe_path` takes them: ``small_cpu``, ``data/trashcan``, ..."""
    return sorted(p.relative_to(RECIPES).with_suffix("").as_posix() for p in RECIPES.rglob("*.yaml"))


def recipe_path(name: str | Path) -> Path:
    """A recipe file: an existing path as given, else a shipped recipe by name. ``configs/small_cpu.yaml`` (the
    checkout's path, as the README writes it) also finds the shipped file, so commands work outside the checkout."""
    path = Path(name)
    if path.exists():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    if parts and ".." not in parts and not path.is_absolute():
        shipped = RECIPES.joinpath(*parts)
        shipped = shipped if shipped.suffix in (".yaml", ".yml") else shipped.with_name(shipped.name + ".yaml")
        if shipped.is_file():
            return shipped
    raise TrashsegError(
        f"config file not found: {name}; give a YAML file or a recipe name: "
        f"{', '.join(recipe_names())} (`trashseg configs` describes them)"
    )


def recipe_description(path: Path) -> str:
    """The first sentence of the comment block that opens a recipe file (every shipped recipe has one)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a recipe by path or name (or the defaults when `path` is None), apply overrides and validate."""
    raw = load_raw(recipe_path(path)) if path else {}
    raw = apply_overrides(raw, overrides or [])
    return validate(raw, str(path) if path else "defaults")


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, enough to rebuild the run without the original file."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
