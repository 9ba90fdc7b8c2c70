"""Which encoder layers make up its first resolution stages, for any encoder (mmseg's ``frozen_stages``).

Written by hand because neither library gives a stage map for every encoder: smp's ``get_stages`` lists only
the deep stages it dilates, and timm's ``feature_info`` exists only on ``tu-`` encoders. Running the encoder once
and watching the resolution of each layer's output works for both, whatever their module names.
"""

from __future__ import annotations

import torch
from torch import nn

from trashseg.config import hw
from trashseg.errors import TrashsegError


class StageError(TrashsegError):
    """The encoder cannot be split at the requested stage."""


def early_layers(encoder: nn.Module, stages: int, size: int | tuple[int, int]) -> list[nn.Module]:
    """The layers (modules holding weights) that the encoder calls before the first one whose output is coarser than
    1/2^stages of the input: for a CNN, its stem and first stages. Everything they compute lies upstream of the
    trainable rest, so freezing them also spares the backward pass through them. (A transformer whose attention
    pools keys inside a stage, as SegFormer's MiT does, ends the prefix at that first pooling.)"""
    height, width = hw(size)
    floor = width // 2**stages  # widths are compared: the layers' outputs below are measured along W
    order: list[tuple[nn.Module, int]] = []
    seen: set[int] = set()

    def record(module: nn.Module, _inputs: tuple, output: object) -> None:
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        if id(module) in seen:
            return
        seen.add(id(module))
        # a layer on tokens (a transformer's B×N×C) runs at the resolution of the last image-shaped output
        if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
            order.append((module, tensor.shape[-1]))
        else:
            order.append((module, order[-1][1] if order else width))

    layers = [m for m in encoder.modules() if any(True for _ in m.parameters(recurse=False))]
    hooks = [m.register_forward_hook(record) for m in layers]
    was_training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            encoder(torch.zeros(1, 3, height, width))  # RGB, as every model here
    finally:
        for hook in hooks:
            hook.remove()
        encoder.train(was_training)
    early: list[nn.Module] = []
    for module, width in order:
        if width < floor:
            break
        early.append(module)
    if not early:
        raise StageError(
            f"train.frozen_stages={stages}: the encoder's first layer already runs below 1/{2**stages} of the input "
            "resolution, so nothing would be frozen; raise it"
        )
    return early
