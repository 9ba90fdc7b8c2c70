"""What a trained model is: the network, the input normalisation it was trained with, its class names, and the
resolved config it was built from. Predict, serve and export need this alone, not the trainer (nor Lightning).

``load_model(path)`` opens what those commands accept: a model folder (below), a run folder (its model file, else
its best checkpoint, else its last), a ``.ckpt``, or an exported ``.onnx`` (as ``OnnxSegmenter``, which is called
and described the same way). Checkpoints are read as data, never run as code (``models.weights.load_torch_file``).

The model file is this layer's own format, smp's and Hugging Face's ``save_pretrained`` layout: ``model.safetensors``
(the network's tensors under the network's own names) and ``model.yaml`` (the resolved config: architecture,
encoder, classes, normalisation, logit bias, test-time recipe; no machine paths). Training writes it beside the
checkpoints when it ends; a folder holding just those two files is a model to hand to someone. Inference prefers
it to Lightning's checkpoint layout, so renaming an attribute of the training module cannot break a saved model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from safetensors.torch import load_model as load_safetensors, save_model as save_safetensors
from torch import nn

from trashseg import __version__
from trashseg.config import Config, InferConfig, load_raw, validate
from trashseg.errors import ModelNotFoundError, TrashsegError
from trashseg.fileio import atomic_write_text, atomic_write_with
from trashseg.models.factory import create_model
from trashseg.models.onnx import OnnxSegmenter
from trashseg.models.pretrained import fill_legacy_normalization, resolve_normalization
from trashseg.models.weights import CHECKPOINT_PREFIX, LEGACY_CHECKPOINT_PREFIX, load_torch_file

MODEL_WEIGHTS, MODEL_CARD = "model.safetensors", "model.yaml"
# How a user who trusts a checkpoint holding other objects than tensors and plain values turns it into one that
# loads safely: a trashseg checkpoint needs only its weights and its config.
RESAVE_CHECKPOINT = (
    "keep only its weights and config: c = torch.load(path, weights_only=False); "
    "torch.save({'state_dict': c['state_dict'], 'hyper_parameters': c['hyper_parameters']}, "
    "'clean.ckpt')"
)


class InferenceModel(Protocol):
    """What the predictor, predict, serve and k-fold use: a ``Segmenter`` or an ``OnnxSegmenter``."""

    info: dict[str, Any]  # where it came from, for a prediction folder's meta.json

    @property
    def classes(self) -> list[str]: ...

    @property
    def image_size(self) -> int | tuple[int, int]: ...  # S (square) or (height, width)

    @property
    def infer(self) -> InferConfig: ...  # the test-time settings it was made for (flips, scales...)

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def split_outputs(out: torch.Tensor | tuple | list) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Networks return logits, or (logits, *aux_logits) in training mode when they have auxiliary heads."""
    if isinstance(out, (tuple, list)):
        return out[0], list(out[1:])
    return out, []


class Segmenter(nn.Module):
    """uint8 B×H×W×3 RGB images in, logits B×C×H×W out: the normalisation travels with the network."""

    mean: torch.Tensor  # buffers (register_buffer), declared for type checkers
    std: torch.Tensor
    logit_bias: torch.Tensor | None

    def __init__(self, net: nn.Module, config: Config):
        super().__init__()
        model = config.model
        if model.mean is None or model.std is None:
            raise ValueError("Segmenter needs model.mean and model.std resolved (Segmenter.from_config does it)")
        self.net = net
        self.config = config
        self.info: dict[str, Any] = {}
        self.register_buffer("mean", torch.tensor(model.mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(model.std).view(1, 3, 1, 1) * 255, persistent=False)
        bias = None if model.logit_bias is None else torch.tensor(model.logit_bias).view(1, -1, 1, 1)
        self.register_buffer("logit_bias", bias, persistent=False)

    @classmethod
    def from_config(cls, config: Config) -> Segmenter:
        """A new network for ``config`` (initialised from ``model.weights``), with the normalisation its encoder's
        weights expect filled into ``config.model`` when the recipe leaves it null."""
        net = create_model(config.model, config.data.num_classes)
        resolve_normalization(config.model)
        return cls(net, config)

    @classmethod
    def load(cls, run_or_ckpt: str | Path, device: torch.device | str = "cpu") -> Segmenter:
        """The trained model of a run folder or checkpoint, in eval mode on `device`."""
        path = checkpoint_of(Path(run_or_ckpt))
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: checkpoint not found")
        ckpt = load_torch_file(path, key="checkpoint", kind="checkpoint", resave=RESAVE_CHECKPOINT, map_location=device)
        try:
            config = validate(ckpt["hyper_parameters"]["config"], str(path))
        except (KeyError, TypeError):
            raise TrashsegError(f"{path}: not a trashseg checkpoint (no config inside)") from None
        if not isinstance(ckpt.get("state_dict"), dict):
            raise TrashsegError(f"{path}: a trashseg config but no weights inside (no state_dict)")
        fill_legacy_normalization(config.model)
        config.model.weights = None  # the checkpoint holds the trained weights; never fetch pretrained ones again
        segmenter = cls.from_config(config)
        try:
            segmenter.net.load_state_dict(network_state(ckpt["state_dict"]))
        except RuntimeError as exc:  # missing or misshapen tensors: torch's message lists them, over several lines
            listing = " ".join(str(exc).split())
            raise TrashsegError(f"{path}: its weights do not fit its own config: {listing}") from None
        segmenter.info = {
            "source": str(path.resolve()),
            "runtime": "torch",
            "engine": "torch",
            "val_miou": _run_val_miou(path),
            "arch": config.model.arch,
            "encoder": config.model.encoder,
        }
        return segmenter.eval().to(device)

    def save_pretrained(self, folder: str | Path, val_miou: float | None = None) -> Path:
        """Write the model file into `folder` (see the module doc): the weights first, the card last, so a card on
        disk means a complete model. Paths of the machine it was trained on are left out of the card."""
        folder = Path(folder)
        config = self.config.model_copy(deep=True)
        config.data.root, config.data.cache_dir, config.data.extra = None, None, []
        atomic_write_with(folder / MODEL_WEIGHTS, lambda tmp: save_safetensors(self.net, tmp))
        card = {"trashseg": __version__, "val_miou": val_miou, "config": config.model_dump(mode="json")}
        atomic_write_text(folder / MODEL_CARD, yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | str = "cpu") -> Segmenter:
        """The model a folder's ``model.yaml`` + ``model.safetensors`` describe, in eval mode on `device`."""
        folder = Path(folder)
        card_path, weights = folder / MODEL_CARD, folder / MODEL_WEIGHTS
        card = load_raw(card_path)  # the one YAML loader: bounded, names the file in its errors
        if not isinstance(card.get("config"), dict):
            raise TrashsegError(f"{card_path}: not a trashseg model card (no config inside)")
        config = validate(card["config"], f"{card_path}: config")
        config.model.weights = None  # the file holds the trained weights; never fetch pretrained ones again
        segmenter = cls.from_config(config)
        if not weights.is_file():
            raise ModelNotFoundError(f"{weights}: the weights of {card_path} are missing")
        try:
            load_safetensors(segmenter.net, str(weights), device="cpu")
        except (RuntimeError, OSError, ValueError) as exc:  # missing or misshapen tensors, or not safetensors
            raise TrashsegError(f"{weights}: does not fit {card_path}: {' '.join(str(exc).split())}") from None
        val_miou = card.get("val_miou")
        segmenter.info = {
            "source": str(folder.resolve()),
            "runtime": "torch",
            "engine": "torch",
            "val_miou": val_miou if isinstance(val_miou, (int, float)) else None,
            "arch": config.model.arch,
            "encoder": config.model.encoder,
        }
        return segmenter.eval().to(device)

    @property
    def classes(self) -> list[str]:
        return self.config.data.classes

    @property
    def image_size(self) -> int | tuple[int, int]:
        """The size the network was trained at, S or (H, W) (the predictor resizes to multiples of it)."""
        return self.config.augment.image_size

    @property
    def infer(self) -> InferConfig:
        """The run's own infer section: what predict and serve use unless told otherwise."""
        return self.config.infer

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """B×H×W×3 uint8 → normalised float N×C×H×W; the permute makes it channels_last for free."""
        x = images.permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.config.train.channels_last else x.contiguous()

    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The network's logits and, in training mode, the auxiliary heads' logits (what the training loss weighs)."""
        return split_outputs(self.net(self.normalize(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input size, as predicted: with ``model.logit_bias`` added (validation, predict, export)."""
        logits = self.outputs(images)[0]
        return logits if self.logit_bias is None else logits + self.logit_bias


def upgrade_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """A training checkpoint's state dict with the network's keys as today's (``model.*`` → ``segmenter.net.*``)."""
    return {
        CHECKPOINT_PREFIX + key[len(LEGACY_CHECKPOINT_PREFIX) :]
        if key.startswith(LEGACY_CHECKPOINT_PREFIX)
        else key: value
        for key, value in state.items()
    }


def network_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The network's tensors of a checkpoint's state dict (either layout), keyed as the network's own."""
    return {
        key[len(CHECKPOINT_PREFIX) :]: value
        for key, value in upgrade_state_dict(state).items()
        if key.startswith(CHECKPOINT_PREFIX)
    }


def checkpoint_of(run_or_ckpt: Path) -> Path:
    """A run folder's best checkpoint (last if no validation ran), or the checkpoint given."""
    if run_or_ckpt.is_dir():
        for name in ("best.ckpt", "last.ckpt"):
            if (run_or_ckpt / "checkpoints" / name).exists():
                return run_or_ckpt / "checkpoints" / name
        raise ModelNotFoundError(f"{run_or_ckpt}: no checkpoints/best.ckpt or last.ckpt (is it a trashseg run folder?)")
    return run_or_ckpt


def best_run(folder: Path) -> Path | None:
    """The run folder under `folder` (such as the demo's ``runs/``) with the best validation mIoU; runs never
    validated come last. None when `folder` holds no run with a checkpoint."""
    runs = [run for run in sorted(folder.glob("*/checkpoints")) if any(run.glob("*.ckpt"))] if folder.is_dir() else []
    scores = {run.parent: _run_val_miou(run / "best.ckpt") for run in runs}
    return max(scores, key=lambda run: _or_worst(scores[run]), default=None)


def _or_worst(miou: float | None) -> float:
    return -1.0 if miou is None else miou


def _run_val_miou(ckpt: Path) -> float | None:
    """The best validation mIoU of the run a checkpoint belongs to (``<run>/checkpoints/x.ckpt``), when known."""
    path = ckpt.parent.parent / "metrics.json"
    return json.loads(path.read_text())["best"]["miou"] if path.exists() else None


def run_folder(source: str | os.PathLike[str]) -> Path:
    """The folder a model's files sit in, from its ``info["source"]``: a model folder (or a run's model file) is
    its own, a checkpoint's run is two folders up (``<run>/checkpoints/x.ckpt``), an ONNX file's holds it."""
    path = Path(source)
    if path.is_dir():
        return path
    return path.parent.parent if path.suffix == ".ckpt" else path.parent


def has_model_file(folder: Path) -> bool:
    return (folder / MODEL_CARD).is_file()


def load_segmenter(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Segmenter:
    """A model folder or a run folder (its model file first), or a checkpoint, as the PyTorch model."""
    path = Path(path)
    if not path.exists():
        raise ModelNotFoundError(f"{path}: no such run folder, checkpoint or ONNX file")
    if path.is_dir() and has_model_file(path):
        return Segmenter.from_pretrained(path, device)
    return Segmenter.load(path, device)


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Segmenter | OnnxSegmenter:
    """A model folder, a run folder, a checkpoint or an exported ONNX model, ready to predict on `device`."""
    path = Path(path)
    return OnnxSegmenter(path, device) if path.suffix == ".onnx" else load_segmenter(path, device)
