"""Initialise a built model from a local weights file, whatever layout the file was saved in.

Offline training machines get their pretrained weights as files; those come as a full model state dict, a
Lightning checkpoint, an encoder-only state dict, or a plain timm/torchvision backbone. Rather than asking
which, every layout below is tried and the one that matches the most tensors (by name and shape) wins.
"""

from __future__ import annotations

import logging
import pickle
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load_file
from torch import nn

from trashseg.errors import TrashsegError

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")

# Dict keys under which checkpoints nest their state dict: Lightning ("state_dict"), timm/DeiT/torchvision
# training scripts ("model").
_WRAPPER_KEYS = ("state_dict", "model")


# Where a trashseg checkpoint keeps the network's tensors: the LightningModule holds a Segmenter as `segmenter`,
# whose network is `net`. Checkpoints written before the Segmenter held the network directly as `model`.
CHECKPOINT_PREFIX = "segmenter.net."
LEGACY_CHECKPOINT_PREFIX = "model."


class _Layout(NamedTuple):
    """Load keys starting with `strip` (removed, then `add` prepended) into the submodule `target`."""

    target: str  # "" = the whole model, "encoder" = model.encoder
    strip: str
    add: str


_LAYOUTS = (
    _Layout("", "", ""),  # our own model's state dict
    _Layout("", CHECKPOINT_PREFIX, ""),  # a trashseg checkpoint
    _Layout("", LEGACY_CHECKPOINT_PREFIX, ""),  # ... from before the Segmenter, or another module's `self.model`
    _Layout("encoder", "", ""),  # encoder-only state dict, or a torchvision/smp backbone
    _Layout("encoder", "", "model."),  # plain timm backbone into smp's TimmUniversalEncoder (`encoder.model`)
    _Layout("encoder", "encoder.", ""),  # the encoder part of another architecture's state dict
    _Layout("encoder", f"{CHECKPOINT_PREFIX}encoder.", ""),  # ... or of its trashseg checkpoint
    _Layout("encoder", f"{LEGACY_CHECKPOINT_PREFIX}encoder.", ""),  # ... or of an older or other Lightning one
)


class _Match(NamedTuple):
    layout: _Layout
    tensors: dict[str, torch.Tensor]  # keys as the target module's
    encoder_tensors: int  # how many of them belong to the encoder


def load_weights(model: nn.Module, path: Path) -> None:
    """Load `path` into `model` (built with random init), picking the layout that matches the most tensors.

    Raises TrashsegError when the file cannot be read or fits fewer than half of the encoder's tensors: such a
    file belongs to another encoder, and training from it silently would mean training from scratch.
    """
    state = _read_state_dict(path)
    encoder_state = model.get_submodule("encoder").state_dict()
    best = max((_match(model, state, layout) for layout in _LAYOUTS), key=lambda m: len(m.tensors))
    if 2 * best.encoder_tensors < len(encoder_state):
        raise TrashsegError(
            f"model.weights: {path} does not fit the encoder of {getattr(model, 'name', type(model).__name__)}: "
            f"only {best.encoder_tensors} of its {len(encoder_state)} tensors match by name and shape "
            f"(was the file saved for another encoder?)"
        )
    target = model.get_submodule(best.layout.target)
    missing = sum(not key.endswith("num_batches_tracked") and key not in best.tensors for key in target.state_dict())
    target.load_state_dict(best.tensors, strict=False)  # smp's encoders return None here, not the missing keys
    log.info(
        "loaded %d tensors from %s into %s (%d of its keys missing, left at their initialisation)",
        len(best.tensors),
        path,
        best.layout.target or "the model",
        missing,
    )


def _match(model: nn.Module, state: Mapping[str, torch.Tensor], layout: _Layout) -> _Match:
    own = model.get_submodule(layout.target).state_dict()
    by_spelling = _by_spelling(own)
    tensors = {}
    for key, value in state.items():
        if not key.startswith(layout.strip):
            continue
        name = layout.add + key[len(layout.strip) :]
        target = name if name in own else by_spelling.get(_spelling(name))
        if target is not None and target not in tensors and own[target].shape == value.shape:
            tensors[target] = value
    encoder_tensors = (
        len(tensors) if layout.target == "encoder" else sum(name.startswith("encoder.") for name in tensors)
    )
    return _Match(layout, tensors, encoder_tensors)


def _spelling(key: str) -> str:
    """`key` with '_' as '.': timm's features_only models flatten nested Sequentials (Swin's ``layers.3``
    becomes ``layers_3``), so a plain timm backbone names the same tensor differently from smp's encoder."""
    return key.replace("_", ".")


def _by_spelling(own: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Own keys by their `_spelling`, leaving out spellings that two keys share (ambiguous)."""
    counts = Counter(_spelling(key) for key in own)
    return {_spelling(key): key for key in own if counts[_spelling(key)] == 1}


def load_torch_file(
    path: Path, *, key: str, kind: str, resave: str, map_location: str | torch.device = "cpu", mmap: bool = False
) -> Any:
    """torch.load of tensors and plain Python values only (weights_only): unpickling any other object can run code
    hidden in the file. Errors name `key` (the setting or option that gave the file) and, for a file holding other
    objects, say how to `resave` it once the user trusts it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        objects = _pickled_objects(path)
        if not objects:
            raise TrashsegError(f"{key}: cannot read {path} as a {kind} (corrupt?)") from None
        raise TrashsegError(
            f"{key}: {path} holds Python objects besides tensors ({', '.join(objects)}), which are only loaded "
            f"from files you trust. If you do, {resave}"
        ) from None
    except Exception as exc:  # corrupt or foreign file: torch raises many types
        raise TrashsegError(f"{key}: cannot read {path} as a {kind}: {exc}") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file or a torch.save'd (possibly wrapped) state dict."""
    obj: Any  # whatever the file holds, checked below
    if path.suffix == ".safetensors":
        try:
            obj = load_file(path, device="cpu")
        except Exception as exc:  # corrupt or foreign file: safetensors raises many types
            raise TrashsegError(f"model.weights: cannot read {path} as a weights file: {exc}") from None
    else:
        obj = load_torch_file(
            path,
            key="model.weights",
            kind="weights file",
            resave="re-save its weights alone, "
            "e.g. torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.pth')",
        )
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) else {}
    if not tensors:
        raise TrashsegError(f"model.weights: {path} contains no state dict (no named tensors found)")
    return tensors


def _pickled_objects(path: Path) -> list[str]:
    """Classes a torch.save'd file pickles besides tensors (why weights_only loading refused it); [] if corrupt."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a torch.save zip file at all
        return []
