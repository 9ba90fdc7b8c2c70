"""Every registered architecture, in smp's test style (smp's tests/models/base.py), taken from the registry so a
newly registered one is tested without editing this file: it builds on the default encoder, trains (forward and
backward) at two input sizes, and exports to ONNX with the same predictions as PyTorch at both sizes. Every shipped
recipe exports the same way.

test_models.py covers the recipes' own (large) encoders at one size; this file covers the architectures, and the
recipes' ONNX export.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trashseg.config import Config, ModelConfig, load_config
from trashseg.models import create_model, list_archs
from trashseg.models.onnx import OnnxSegmenter, export_onnx
from trashseg.models.segmenter import Segmenter

CLASS_NAMES = ["background", "paper", "metal"]
CLASSES = len(CLASS_NAMES)
# model.encoder's default (resnet18): what `--set model.arch=X` builds. DPT takes only timm ViTs: timm's tiny test
# ViT, with dynamic_img_size so that it takes sizes other than its 160 px default.
ENCODER: dict[str, tuple[str, dict[str, Any]]] = {"DPT": ("tu-test_vit", {"dynamic_img_size": True})}
DEFAULT_ENCODER: tuple[str, dict[str, Any]] = (ModelConfig().encoder, {})
# Two input sizes per architecture: the smallest it supports and a larger one that is not a power of two.
# PAN halves its stride-16 feature three more times, so it needs 128 px.
SIZES: dict[str, tuple[int, int]] = {"PAN": (128, 160)}
DEFAULT_SIZES = (64, 96)


def _model_config(arch: str) -> ModelConfig:
    encoder, params = ENCODER.get(arch, DEFAULT_ENCODER)
    return ModelConfig(arch=arch, encoder=encoder, weights=None, params=params)


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    """CI has 2 cores; more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", list_archs())
def test_forward_backward_at_two_sizes(arch: str) -> None:
    """Training outputs (logits and any auxiliary logits) are (N, classes, H, W) at the input size, and the loss
    reaches the encoder's first layer."""
    torch.manual_seed(0)
    model = create_model(_model_config(arch), CLASSES).train()
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, nn.Conv2d))

    for size in SIZES.get(arch, DEFAULT_SIZES):
        model.zero_grad()
        out = model(torch.randn(2, 3, size, size))
        outputs = out if isinstance(out, tuple) else (out,)
        assert all(o.shape == (2, CLASSES, size, size) for o in outputs), (size, [o.shape for o in outputs])
        target = torch.randint(0, CLASSES, (2, size, size))
        loss = sum(F.cross_entropy(o, target) for o in outputs)
        loss.backward()
        assert torch.isfinite(loss), size
        assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0, size


@pytest.mark.parametrize("arch", list_archs())
def test_onnx_export_matches_pytorch_at_two_sizes(arch: str, tmp_path: Path) -> None:
    config = load_config(None, [f"data.classes={CLASS_NAMES}"])
    config.model = _model_config(arch)
    _assert_onnx_matches_pytorch(config, SIZES.get(arch, DEFAULT_SIZES), tmp_path / "model.onnx")


RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
# The Swin recipes with a 2-block, 32-channel Swin (timm arguments): the same architecture, window, training size
# and dynamic size as shipped, which their full encoders (88M and 197M parameters) take minutes to export with.
SHRUNK_SWIN = ["model.params.depths=[1,1,2,1]", "model.params.embed_dim=32", "model.params.num_heads=[1,2,4,8]"]
SATURATED = 1e3  # logits this large make the softmax one-hot (see _assert_onnx_matches_pytorch)
SMALL_RECIPES = [r for r in RECIPES if r.stem.startswith("small_cpu")]
SWIN_RECIPES = [r for r in RECIPES if r.stem.startswith("upernet_swin")]


@pytest.mark.parametrize("recipe", SMALL_RECIPES, ids=lambda p: p.stem)
def test_small_recipe_exports_and_matches_pytorch(recipe: Path, tmp_path: Path) -> None:
    config = load_config(recipe, ["model.weights=null"])
    _assert_onnx_matches_pytorch(config, DEFAULT_SIZES, tmp_path / "model.onnx")


@pytest.mark.parametrize("recipe", SWIN_RECIPES, ids=lambda p: p.stem)
def test_swin_recipe_shrunk_exports_and_matches_pytorch(recipe: Path, tmp_path: Path) -> None:
    """The seed's best model, UPerNet on Swin (pyramid pooling, shifted windows padded at these sizes)."""
    config = load_config(recipe, ["model.weights=null", *SHRUNK_SWIN])
    _assert_onnx_matches_pytorch(config, DEFAULT_SIZES, tmp_path / "model.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [r for r in RECIPES if r not in SMALL_RECIPES], ids=lambda p: p.stem)
def test_every_large_recipe_exports_and_matches_pytorch(recipe: Path, tmp_path: Path) -> None:
    """Their own encoders at full size (ImageNet-sized networks: minutes each on 2 cores)."""
    config = load_config(recipe, ["model.weights=null"])
    _assert_onnx_matches_pytorch(config, SIZES.get(config.model.arch, DEFAULT_SIZES), tmp_path / "model.onnx")


def _assert_onnx_matches_pytorch(config: Config, sizes: tuple[int, int], path: Path) -> None:
    """`trashseg export`'s path (uint8 NHWC in, normalisation baked in, dynamic batch and size): ONNX Runtime's
    probabilities equal PyTorch's at the export size and at another size, as predict's TTA scales need."""
    torch.manual_seed(0)
    module = Segmenter.from_config(config).eval()
    export_onnx(module, path, image_size=sizes[0], meta={"classes": config.data.classes, "image_size": sizes[0]})
    onnx_model = OnnxSegmenter(path)

    rng = np.random.default_rng(0)
    for size in sizes:
        images = torch.from_numpy(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
        with torch.inference_mode():
            reference = module(images)
        logits = onnx_model(images)
        assert logits.shape == (2, config.data.num_classes, size, size), size
        # the project's export check (probabilities), and logits too: a random model's softmax may saturate. A
        # random FCN-R101's logits reach 1e4: its softmax is one-hot but at near ties, where float32 rounding of
        # the logits (1e-6 of them) flips it, so only its logits are compared
        scale = max(1.0, float(reference.abs().max()))
        if scale < SATURATED:
            assert float((logits.softmax(1) - reference.softmax(1)).abs().max()) < 1e-4, size
        assert float((logits - reference).abs().max()) < 1e-4 * scale, (size, scale)
