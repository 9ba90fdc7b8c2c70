"""The model stage: every recipe builds and trains a step on CPU, the forward contract, weights, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import huggingface_hub.constants
import pytest
import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from trashseg.config import ModelConfig, load_config
from trashseg.errors import TrashsegError
from trashseg.models import create_model, list_archs, register_arch, registry

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
# Smallest input per architecture (64 otherwise): PAN halves its stride-16 feature three more times.
MIN_SIZE = {"PAN": 128}


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _loss(out: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the logits plus 0.4× that of any auxiliary logits; returns (loss, logits)."""
    logits, *aux = out if isinstance(out, tuple) else (out,)
    return F.cross_entropy(logits, target) + 0.4 * sum(F.cross_entropy(a, target) for a in aux), logits


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_and_trains_one_step(recipe: Path) -> None:
    overrides = ["model.weights=null"]
    cfg = load_config(recipe, overrides)
    size = MIN_SIZE.get(cfg.model.arch, 64)
    n = cfg.data.num_classes
    model = create_model(cfg.model, n).train()
    target = torch.randint(0, n, (2, size, size))

    loss, logits = _loss(model(torch.randn(2, 3, size, size)), target)
    loss.backward()

    assert logits.shape == (2, n, size, size)
    assert torch.isfinite(loss)
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0


def test_swin_recipe_runs_at_512_and_at_tta_scales_with_the_window_of_its_pretrained_weights() -> None:
    # The step test above runs Swin at 64 px; the recipe's own size must run too, and so must the 0.75 TTA scale
    # (384), keeping window 12 (the relative position tables of the 384 px ImageNet-22k weights: 23×23 rows).
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "upernet_swin_b.yaml", ["model.weights=null"])
    model = create_model(cfg.model, 11).eval()

    with torch.no_grad():
        for side in (512, 384):
            assert model(torch.randn(1, 3, side, side)).shape == (1, 11, side, side)
    tables = [m for n, m in model.named_parameters() if n.endswith("relative_position_bias_table")]
    assert tables and all(t.shape[0] == 23 * 23 for t in tables)
    # at 512 the last stage (16×16) is larger than the window: its second block must shift, as in mmseg
    last_stage = [m.shift_size for n, m in model.named_modules() if n.endswith("layers_3.blocks.1")]
    assert last_stage == [(6, 6)]


@pytest.mark.parametrize("encoder", ["resnet18", "tu-resnet18", "mit_b0"])
def test_ocrnet_returns_aux_logits_only_in_training(encoder: str) -> None:
    model = create_model(ModelConfig(arch="OCRNet", encoder=encoder), 5)
    x = torch.randn(2, 3, 64, 64)

    out = model.train()(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert all(o.shape == (2, 5, 64, 64) for o in out)
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 64, 64)


@pytest.mark.parametrize(("encoder", "stride"), [("resnet18", 8), ("resnet18", 16), ("tu-resnet18", 8), ("mit_b0", 32)])
def test_fcn_returns_logits_in_both_modes(encoder: str, stride: int) -> None:
    model = create_model(ModelConfig(arch="FCN", encoder=encoder, params={"encoder_output_stride": stride}), 5)
    x = torch.randn(2, 3, 64, 64)

    assert model.encoder.output_stride == stride
    assert model.train()(x).shape == (2, 5, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 64, 64)


def test_smp_and_our_archs_are_registered() -> None:
    assert {c.__name__ for c in smp.MODEL_ARCHITECTURES_MAPPING.values()} | {"OCRNet", "FCN"} == set(list_archs())


def test_register_arch_makes_a_constructor_available_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_ARCHS", dict(registry._ARCHS))

    @register_arch("TinyUnet")
    def tiny_unet(**kwargs: object) -> nn.Module:
        return smp.Unet(encoder_depth=3, decoder_channels=(32, 16, 8), **kwargs)

    assert "TinyUnet" in list_archs()
    assert create_model(ModelConfig(arch="TinyUnet"), 3)(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="already registered"):
        register_arch("Unet")(tiny_unet)


# --- weights ---------------------------------------------------------------------------------------------


def test_library_weights_offline_say_how_to_proceed(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, no retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing to find
    with pytest.raises(TrashsegError) as err:
        create_model(ModelConfig(arch="Unet", encoder="resnet18", weights="imagenet"), 3)
    message = str(err.value)
    assert "resnet18" in message and "imagenet" in message
    assert "https://huggingface.co/smp-hub/resnet18.imagenet" in message
    assert "model.weights: /path/to/file" in message and "model.weights: null" in message


def test_unknown_library_weights_name_lists_the_available_ones() -> None:
    with pytest.raises(TrashsegError, match=r"model.weights: encoder 'resnet18' has no 'imagenet21k'.*'ssl'"):
        create_model(ModelConfig(arch="Unet", encoder="resnet18", weights="imagenet21k"), 3)


@pytest.fixture(scope="module")
def source() -> nn.Module:
    """A trained-looking Unet/resnet18: random weights, distinct from any fresh initialisation."""
    torch.manual_seed(0)
    model = create_model(ModelConfig(arch="Unet", encoder="resnet18"), 3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def _save_full(model: nn.Module, path: Path) -> None:
    torch.save(model.state_dict(), path)


def _save_lightning(model: nn.Module, path: Path) -> None:
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)


def _save_checkpoint(model: nn.Module, path: Path) -> None:
    """A trashseg checkpoint: the network under the LightningModule's Segmenter."""
    torch.save({"epoch": 3, "state_dict": {f"segmenter.net.{k}": v for k, v in model.state_dict().items()}}, path)


def _save_encoder(model: nn.Module, path: Path) -> None:
    save_file({k: v.contiguous() for k, v in model.encoder.state_dict().items()}, path)


@pytest.mark.parametrize(
    ("save", "filename", "arch"),
    [
        (_save_full, "full.pth", "Unet"),
        (_save_lightning, "last.ckpt", "Unet"),
        (_save_checkpoint, "best.ckpt", "Unet"),
        (_save_checkpoint, "best.ckpt", "FCN"),  # its encoder part
        (_save_encoder, "encoder.safetensors", "FCN"),
        (_save_full, "unet.pth", "FCN"),  # another architecture's full state dict: its encoder part
    ],
    ids=["full", "lightning", "trashseg-ckpt", "trashseg-ckpt-other-arch", "encoder-only", "other-arch"],
)
def test_local_weights_file_initialises_the_encoder(
    source: nn.Module, tmp_path: Path, save, filename: str, arch: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / filename
    save(source, path)

    with caplog.at_level(logging.INFO, logger="trashseg.models.weights"):
        model = create_model(ModelConfig(arch=arch, encoder="resnet18", weights=str(path)), 3)

    expected = source.encoder.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.encoder.state_dict().items())
    if arch == "Unet":  # same architecture: the decoder comes back too
        assert torch.equal(model.segmentation_head[0].weight, source.segmentation_head[0].weight)
    assert f"from {path}" in caplog.text and "missing" in caplog.text


def test_plain_timm_backbone_loads_into_a_tu_encoder(tmp_path: Path) -> None:
    # timm's features_only model renames nested stages (stages.1 → stages_1); the loader maps them back.
    backbone = timm.create_model("convnext_atto")
    torch.save(backbone.state_dict(), tmp_path / "convnext_atto.pth")

    model = create_model(
        ModelConfig(arch="UPerNet", encoder="tu-convnext_atto", weights=str(tmp_path / "convnext_atto.pth")), 3
    )

    encoder = model.encoder.model.state_dict()
    assert torch.equal(encoder["stem_0.weight"], backbone.state_dict()["stem.0.weight"])
    assert torch.equal(
        encoder["stages_3.blocks.1.conv_dw.weight"], backbone.state_dict()["stages.3.blocks.1.conv_dw.weight"]
    )


def test_missing_weights_file() -> None:
    with pytest.raises(TrashsegError, match="weights file not found: nowhere/encoder.pth"):
        create_model(ModelConfig(encoder="resnet18", weights="nowhere/encoder.pth"), 3)


def test_weights_file_of_another_encoder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(create_model(ModelConfig(encoder="mit_b0"), 3).state_dict(), path)

    with pytest.raises(TrashsegError, match=rf"{path} does not fit the encoder .*only 0 of its"):
        create_model(ModelConfig(encoder="resnet18", weights=str(path)), 3)


class _Opaque:
    """Stands for an arbitrary pickled object inside a checkpoint."""


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ([1, 2, 3], "contains no state dict"),
        ({"state_dict": {}, "hparams": _Opaque()}, "Python objects besides tensors"),
        (None, "cannot read .* as a weights file"),
    ],
    ids=["no-state-dict", "untrusted-objects", "corrupt"],
)
def test_unusable_weights_file_is_named(tmp_path: Path, content: object, error: str) -> None:
    path = tmp_path / "weights.pth"
    if content is None:
        path.write_bytes(b"not a checkpoint")
    else:
        torch.save(content, path)

    with pytest.raises(TrashsegError, match=error) as info:
        create_model(ModelConfig(encoder="resnet18", weights=str(path)), 3)
    assert str(path) in str(info.value)


# --- configuration errors --------------------------------------------------------------------------------


def test_unknown_arch_lists_the_known_ones() -> None:
    with pytest.raises(TrashsegError, match=r"model.arch: unknown architecture 'UNet'. Did you mean 'Unet'\?.*OCRNet"):
        create_model(ModelConfig(arch="UNet"), 3)


@pytest.mark.parametrize("encoder", ["resnet181", "tu-not_a_timm_model"])
def test_unknown_encoder_is_named_with_a_hint(encoder: str) -> None:
    with pytest.raises(TrashsegError, match=rf"model.encoder: unknown encoder '{encoder}'.*tu-<timm name>"):
        create_model(ModelConfig(encoder=encoder), 3)


@pytest.mark.parametrize(
    ("arch", "encoder", "key"),
    [
        ("Unet", "resnet18", "decoder_chanels"),  # smp would pass it to its own encoder, which ignores it
        ("Unet", "tu-resnet18", "decoder_chanels"),  # timm refuses it
        ("OCRNet", "resnet18", "ocr_mid_channel"),
        ("FCN", "tu-resnet18", "num_convs"),
    ],
)
def test_unknown_params_key_is_named(arch: str, encoder: str, key: str) -> None:
    with pytest.raises(TrashsegError, match=rf"model.params.{key}: not accepted by {arch}"):
        create_model(ModelConfig(arch=arch, encoder=encoder, params={key: 1}), 3)


@pytest.mark.parametrize(
    ("key", "error"),
    [("classes", "set by data.classes"), ("activation", "not supported; models must return raw class logits")],
)
def test_params_that_create_model_owns_are_refused(key: str, error: str) -> None:
    with pytest.raises(TrashsegError, match=rf"model.params.{key}: {error}"):
        create_model(ModelConfig(params={key: "softmax2d"}), 3)


def test_architecture_refusing_its_settings_is_a_user_error() -> None:
    with pytest.raises(TrashsegError, match="model: FCN with encoder 'resnet18': .*output_stride 8, 16 or 32, got 4"):
        create_model(ModelConfig(arch="FCN", encoder="resnet18", params={"encoder_output_stride": 4}), 3)
