"""Fine-tuning a pretrained encoder: its own learning rate, frozen first epochs, BatchNorm kept in eval mode,
and the encoder's input normalisation stored with the run and used when it is loaded again."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from tests.helpers import quick_cfg
from trashseg.config import ModelConfig, OptimConfig
from trashseg.models import create_model
from trashseg.models.pretrained import IMAGENET_MEAN
from trashseg.models.segmenter import Segmenter
from trashseg.models.stages import StageError, early_layers
from trashseg.train.module import SegmentationModule
from trashseg.train.optim import build_optimizer, param_groups
from trashseg.train.run import train


def _module(data: Path, tmp: Path, *extra: str) -> SegmentationModule:
    return SegmentationModule(quick_cfg(data, tmp, "model.weights=null", *extra))


def _batchnorms(module: SegmentationModule) -> list[nn.Module]:
    return [m for m in module.segmenter.net.encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_encoder_learning_rate_multiplier(sample_data: Path, tmp_path: Path) -> None:
    module = _module(sample_data, tmp_path)
    cfg = OptimConfig(lr=1e-3, encoder_lr_mult=0.1)
    optimizer = build_optimizer(cfg, param_groups(cfg, module.segmenter.net))
    decoder, encoder = optimizer.param_groups
    assert decoder["lr"] == pytest.approx(1e-3) and encoder["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in encoder["params"]} == {id(p) for p in module.segmenter.net.encoder.parameters()}
    assert len(decoder["params"]) + len(encoder["params"]) == len(list(module.segmenter.net.parameters()))


def test_freeze_bn_keeps_pretrained_statistics(sample_data: Path, tmp_path: Path) -> None:
    module = _module(sample_data, tmp_path, "train.freeze_bn=true").train()
    before = [bn.running_mean.clone() for bn in _batchnorms(module)]
    module(torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8))
    assert all(not bn.training for bn in _batchnorms(module)) and module.segmenter.net.decoder.training
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, _batchnorms(module), strict=True))


class Snapshots(pl.Callback):
    """Encoder and decoder weights at the start and at the end of each epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, dict[str, torch.Tensor]]] = []

    def _take(self, module: SegmentationModule) -> None:
        self.states.append(
            {part: copy.deepcopy(getattr(module.segmenter.net, part).state_dict()) for part in ("encoder", "decoder")}
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: SegmentationModule) -> None:
        self._take(pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: SegmentationModule) -> None:
        self._take(pl_module)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_encoder_epochs_train_the_decoder_only(sample_data: Path, tmp_path: Path) -> None:
    snapshots = Snapshots()
    cfg = quick_cfg(
        sample_data, tmp_path, "model.weights=null", "train.freeze_encoder_epochs=1", "train.ema_decay=null"
    )
    train(cfg, tmp_path / "run", extra_callbacks=[snapshots])
    start, epoch0, epoch1 = snapshots.states
    assert _same(start["encoder"], epoch0["encoder"])  # weights and BatchNorm statistics untouched
    assert not _same(start["decoder"], epoch0["decoder"])
    assert not _same(epoch0["encoder"], epoch1["encoder"])  # released after the first epoch


def test_run_stores_the_encoders_normalisation_and_loads_it(sample_data: Path, tmp_path: Path) -> None:
    cfg = quick_cfg(sample_data, tmp_path, "train.epochs=1")
    train(cfg, tmp_path / "run")
    assert "mean:\n  - 0.5" in (tmp_path / "run" / "config.yaml").read_text()
    model = Segmenter.load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    white = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    assert torch.allclose(model.normalize(white), torch.ones(1, 3, 2, 2))  # (1 - 0.5) / 0.5


def test_checkpoint_from_before_normalisation_was_stored_loads_with_imagenets(
    sample_data: Path, tmp_path: Path
) -> None:
    cfg = quick_cfg(sample_data, tmp_path, "train.epochs=1")
    train(cfg, tmp_path / "run")
    ckpt_path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=True)
    for key in ("mean", "std"):
        del ckpt["hyper_parameters"]["config"]["model"][key]
    torch.save(ckpt, tmp_path / "old.ckpt")
    model = Segmenter.load(tmp_path / "old.ckpt")
    assert model.config.model.mean == pytest.approx(IMAGENET_MEAN)
    assert torch.allclose(model.mean.flatten(), torch.tensor(IMAGENET_MEAN) * 255)


def test_frozen_stages_never_train_while_the_rest_does(sample_data: Path, tmp_path: Path) -> None:
    snapshots = Snapshots()
    cfg = quick_cfg(sample_data, tmp_path, "train.frozen_stages=2", "train.freeze_encoder_epochs=1")
    train(cfg, tmp_path / "run", extra_callbacks=[snapshots])
    start, end = snapshots.states[0]["encoder"], snapshots.states[-1]["encoder"]
    stem = [k for k in start if k.startswith(("model.conv_stem.", "model.bn1.", "model.blocks.0.", "model.blocks.1."))]
    assert stem and all(torch.equal(start[k], end[k]) for k in stem)  # weights and BatchNorm statistics
    assert not torch.equal(start["model.blocks.3.0.conv_pw.weight"], end["model.blocks.3.0.conv_pw.weight"])
    assert not _same(snapshots.states[0]["decoder"], snapshots.states[-1]["decoder"])


def _output_widths(encoder: nn.Module, layers: list[nn.Module], size: int) -> list[int]:
    widths: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: widths.append(o.shape[-1])) for m in layers]
    encoder.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return widths


@pytest.mark.parametrize("encoder", ["resnet18", "tu-tf_efficientnet_lite0"])
def test_frozen_stages_end_at_the_first_coarser_layer(encoder: str) -> None:
    net = create_model(ModelConfig(arch="FPN", encoder=encoder), 3)
    for stages, size in ((1, 64), (2, 64), (2, 128)):
        frozen = early_layers(net.encoder, stages, size)
        # all at 1/2 … 1/2^N, the last of them at 1/2^N
        assert min(_output_widths(net.encoder, frozen, size)) == size // 2**stages
        assert len(early_layers(net.encoder, stages + 1, size)) > len(frozen)  # the next stage adds layers


def test_frozen_stages_that_freeze_nothing_are_refused() -> None:
    net = create_model(ModelConfig(arch="Segformer", encoder="mit_b0"), 3)
    with pytest.raises(StageError, match=r"train.frozen_stages=1: .* below 1/2 .* nothing would be frozen"):
        early_layers(net.encoder, 1, 64)
