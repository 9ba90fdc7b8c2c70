"""Offline ImageNet weights: the conversion is proven by classification, not just by shapes; `imagenet` on a
lite encoder needs no network; the input normalisation belongs to the encoder and travels with the model."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from trashseg.config import ModelConfig
from trashseg.errors import TrashsegError
from trashseg.models import create_model
from trashseg.models.catalog import find_encoders
from trashseg.models.pretrained import (
    OFFLINE_WEIGHTS,
    convert_efficientnet_pytorch,
    encoder_normalization,
    load_offline_classifier,
    offline_weights_file,
    resolve_encoder,
)

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # ImageNet-1k class index


@pytest.mark.parametrize(("name", "size"), [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite2", 260)])
def test_converted_weights_recognise_grace_hoppers_uniform(name: str, size: int) -> None:
    model = load_offline_classifier(name)
    image = np.asarray(Image.open(GRACE_HOPPER).convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] / 255 - 0.5) / 0.5  # timm's tf_ normalisation
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert MILITARY_UNIFORM in top5 and probs[MILITARY_UNIFORM] > 0.05  # a random model gives about 0.001


def test_conversion_names_a_tensor_that_does_not_fit(tmp_path: Path) -> None:
    theirs = torch.load(OFFLINE_WEIGHTS["tu-tf_efficientnet_lite0"].source_file(), weights_only=True)
    theirs["_conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    bad = tmp_path / "lite0.pth"
    torch.save(theirs, bad)
    with pytest.raises(TrashsegError, match=r"lite0.pth: tensor for conv_stem.weight has shape \(8, 3, 3, 3\)"):
        convert_efficientnet_pytorch(bad, "tf_efficientnet_lite0")


def test_conversion_is_cached() -> None:
    first = offline_weights_file("tu-tf_efficientnet_lite1")
    mtime = first.stat().st_mtime_ns
    assert offline_weights_file("efficientnet-lite1") == first and first.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("spelling", ["efficientnet-lite0", "timm-tf_efficientnet_lite0", "tu-tf_efficientnet_lite0"])
def test_imagenet_on_a_lite_encoder_loads_the_packaged_weights_offline(
    spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = create_model(ModelConfig(arch="Unet", encoder=spelling, weights="imagenet"), 4)
    expected = load_file(offline_weights_file(spelling))["conv_stem.weight"]
    assert resolve_encoder(spelling) == "tu-tf_efficientnet_lite0"
    assert torch.equal(model.encoder.model.conv_stem.weight, expected)


def test_hub_only_encoders_offline_name_the_ones_that_work(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing to find
    with pytest.raises(TrashsegError, match=r"tu-tf_efficientnet_lite0 \(efficientnet-lite0\)"):
        create_model(ModelConfig(arch="Unet", encoder="tu-resnet10t", weights="imagenet"), 3)


def test_normalisation_comes_from_the_encoders_pretrained_config() -> None:
    assert encoder_normalization("efficientnet-lite2") == ([0.5] * 3, [0.5] * 3)
    mean, std = encoder_normalization("resnet18")
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])


def test_encoder_listing_marks_offline_weights() -> None:
    found = {info.name: info.offline for info in find_encoders("*efficientnet_lite*")}
    assert found["tu-tf_efficientnet_lite0"] == "installed" and found["tu-efficientnet_lite0"] == ""


def test_models_command_lists_offline_encoders(capsys: pytest.CaptureFixture) -> None:
    from tests.helpers import run_cli

    code, out = run_cli(["models", "--encoders", "*lite0*"], capsys)
    assert code == 0 and "UPerNet" in out and "OCRNet" in out
    assert "efficientnet-lite0" in out and "installed" in out and "tu-efficientnet_lite0" in out


def test_converting_does_not_shift_the_random_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRASHSEG_CACHE", str(tmp_path))  # cold cache: the conversion runs
    torch.manual_seed(0)
    offline_weights_file("tu-tf_efficientnet_lite0")
    cold = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), cold)
