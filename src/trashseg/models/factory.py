"""``create_model``: a validated ``ModelConfig`` → a ready segmentation model.

Every mistake a recipe can make here (unknown architecture, encoder or parameter, weights that cannot be
downloaded or found) becomes a TrashsegError naming the config key, before or instead of a library traceback.
"""

from __future__ import annotations

import difflib
import inspect
import re
from pathlib import Path

import segmentation_models_pytorch as smp
import timm
from torch import nn

from trashseg.config import ModelConfig
from trashseg.errors import TrashsegError
from trashseg.models.pretrained import OFFLINE_WEIGHTS, offline_weights_file, resolve_encoder
from trashseg.models.registry import ArchConstructor, get_arch
from trashseg.models.weights import WEIGHT_SUFFIXES, load_weights

# Arguments create_model sets itself, and where the recipe sets them instead.
_SET_BY_CONFIG = {
    "encoder_name": "model.encoder",
    "encoder_weights": "model.weights",
    "in_channels": "the input (always RGB)",
    "classes": "data.classes",
}
# smp arguments that would make forward return something other than logits (see the package docstring).
_BREAK_LOGITS = ("activation", "aux_params")


def create_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """Build ``cfg.arch`` with ``cfg.encoder`` for `num_classes` outputs and initialise it from ``cfg.weights``."""
    cfg = cfg.model_copy(update={"encoder": resolve_encoder(cfg.encoder)})
    constructor = get_arch(cfg.arch)
    _check_encoder(cfg.encoder)
    _check_params(cfg, constructor)
    weights_file = _weights_file(cfg.weights) or _offline_file(cfg.encoder, cfg.weights)
    library_weights = None if weights_file is not None else _library_weights(cfg.encoder, cfg.weights)
    model = _build(constructor, cfg, num_classes, library_weights)
    if weights_file is not None:
        load_weights(model, weights_file)
    return model


def _check_encoder(name: str) -> None:
    if name.startswith("tu-"):
        known = timm.is_model(name[3:])
    else:  # smp's own, or its deprecated timm- aliases that it maps onto tu- names
        known = name in smp.encoders.get_encoder_names() or (name.startswith("timm-") and timm.is_model(name[5:]))
    if known:
        return
    candidates = smp.encoders.get_encoder_names() + [f"tu-{m}" for m in timm.list_models()]
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise TrashsegError(
        f"model.encoder: unknown encoder {name!r}.{hint} Use an smp encoder name (resnet50, se_resnext101_32x4d, "
        f"mit_b2, ...; see smp.encoders.get_encoder_names()) or any timm model as tu-<timm name> "
        f"(tu-convnext_base, tu-swin_base_patch4_window12_384, ...; see timm.list_models())."
    )


def _check_params(cfg: ModelConfig, constructor: ArchConstructor) -> None:
    """Reject keys the architecture would refuse or, worse, silently drop.

    smp architectures pass unknown keyword arguments on to the encoder, but only timm (``tu-``) encoders use
    them: smp's own encoders ignore them, so a typo would go unnoticed.
    """
    for key in cfg.params:
        if key in _SET_BY_CONFIG:
            raise TrashsegError(f"model.params.{key}: set by {_SET_BY_CONFIG[key]}, not by model.params")
        if key in _BREAK_LOGITS:
            raise TrashsegError(f"model.params.{key}: not supported; models must return raw class logits")
    # a class's own __init__ (mypy cannot tell `constructor` is the class here, not an instance)
    init = constructor.__init__ if isinstance(constructor, type) else constructor  # type: ignore[misc]
    signature = inspect.signature(init)
    named = [
        n
        for n, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"
    ]
    forwards_to_encoder = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    for key in cfg.params:
        if key not in named and not (forwards_to_encoder and cfg.encoder.startswith("tu-")):
            options = ", ".join(n for n in named if n not in _SET_BY_CONFIG and n not in _BREAK_LOGITS)
            raise TrashsegError(
                f"model.params.{key}: not accepted by {cfg.arch} (its options: {options}; other keys reach "
                f"only timm tu- encoders)"
            )


def _weights_file(weights: str | None) -> Path | None:
    """The local file `weights` names, or None for a library weights name (or no weights)."""
    if weights is None or not ("/" in weights or "\\" in weights or weights.lower().endswith(WEIGHT_SUFFIXES)):
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise TrashsegError(f"model.weights: weights file not found: {path}")
    return path


def _offline_file(encoder: str, weights: str | None) -> Path | None:
    """ImageNet weights that an installed package ships for `encoder` (no download), if any."""
    return offline_weights_file(encoder) if weights == "imagenet" else None


def offline_encoders_hint() -> str:
    """One sentence naming the encoders whose ImageNet weights work without a network."""
    names = ", ".join(f"{w.encoder} ({w.alias})" for w in OFFLINE_WEIGHTS.values())
    return f"Encoders whose `imagenet` weights work offline (from installed packages): {names}."


def _library_weights(encoder: str, weights: str | None) -> str | bool | None:
    """What smp's ``encoder_weights`` expects: timm encoders take True (the tag is in the encoder name)."""
    if weights is None:
        return None
    if encoder.startswith("tu-"):
        return True
    available = list(smp.encoders.encoders[encoder]["pretrained_settings"]) if encoder in smp.encoders.encoders else []
    if available and weights not in available:
        raise TrashsegError(
            f"model.weights: encoder {encoder!r} has no {weights!r} weights; choose one of {available}, "
            f"a local file (model.weights: /path/to/file.pth) or null for random initialisation"
        )
    return weights


def _build(constructor: ArchConstructor, cfg: ModelConfig, num_classes: int, weights: str | bool | None) -> nn.Module:
    try:
        return constructor(
            encoder_name=cfg.encoder, encoder_weights=weights, in_channels=3, classes=num_classes, **cfg.params
        )
    except TypeError as exc:  # a key the encoder's timm model refuses
        found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if not found or found.group(1) not in cfg.params:
            raise
        raise TrashsegError(
            f"model.params.{found.group(1)}: not accepted by {cfg.arch} (nor by timm's {cfg.encoder[3:]})"
        ) from None
    except OSError as exc:  # hub download errors (no connection, offline mode, missing file) are all OSErrors
        if weights is None:
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        page = _weights_page(cfg.encoder, cfg.weights)
        where = f"model.safetensors from {page}" if page else "the weights file"
        raise TrashsegError(
            f"model.weights: could not download the {cfg.weights!r} weights of encoder {cfg.encoder!r} ({reason}). "
            f"Without internet access, download {where} on a connected machine, copy it over and set "
            f"`model.weights: /path/to/file`, or set `model.weights: null` to start from random weights. "
            f"{offline_encoders_hint()}"
        ) from exc
    except ValueError as exc:  # the architecture's own checks: output stride, depth, encoder it cannot use
        raise TrashsegError(f"model: {cfg.arch} with encoder {cfg.encoder!r}: {exc}") from exc


def _weights_page(encoder: str, weights: str | None) -> str | None:
    """The Hugging Face repository smp or timm downloads these weights from; its model.safetensors loads as a
    local weights file (encoder-only or plain timm backbone)."""
    if encoder.startswith("tu-"):
        pretrained = timm.models.get_pretrained_cfg(encoder[3:])
        repo = pretrained.hf_hub_id if pretrained else None
    else:
        repo = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {}).get(weights, {}).get("repo_id")
    return f"https://huggingface.co/{repo}" if repo else None
