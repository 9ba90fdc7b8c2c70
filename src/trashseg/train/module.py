"""The LightningModule: training around a ``Segmenter`` (which normalises uint8 batches on the device), weighted
losses with auxiliary heads, and the competition's confusion-matrix mIoU accumulated on the device over the whole
validation split."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.callbacks import Timer
from torch import nn

from trashseg.config import Config, hw
from trashseg.errors import TrashsegError
from trashseg.metrics import ConfusionMeter, SegScores
from trashseg.models.segmenter import Segmenter, upgrade_state_dict
from trashseg.models.stages import early_layers
from trashseg.train.losses import SegmentationLoss
from trashseg.train.optim import build_optimizer, build_scheduler, param_groups


class NonFiniteLossError(RuntimeError):
    """Raised from a training step whose loss is NaN/inf; the run stops and keeps its last good checkpoint, if any."""


def check_input_sizes(cfg: Config, net: nn.Module) -> None:
    """Refuse, naming the key, a training size the network cannot take: smp's own check only says "Wrong input
    shape" at the first step."""
    stride = getattr(net, "encoder", None) and getattr(net.encoder, "output_stride", None)
    if not getattr(net, "requires_divisible_input_shape", False) or not stride:
        return
    for key in ("image_size", "crop_size"):
        size = getattr(cfg.augment, key)
        for side in hw(size) if size is not None else ():
            if side % stride:
                below, above = side // stride * stride, (side // stride + 1) * stride
                shown, which = (list(size), f" for the side {side}") if isinstance(size, tuple) else (size, "")
                raise TrashsegError(
                    f"augment.{key}={shown}: {cfg.model.arch} on {cfg.model.encoder} needs sizes divisible by "
                    f"{stride}; use {below or above} or {above}{which}"
                )


class SegmentationModule(pl.LightningModule):
    def __init__(self, cfg: Config, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder_frozen = False
        self.num_classes = cfg.data.num_classes
        self.segmenter = Segmenter.from_config(cfg)
        check_input_sizes(cfg, self.segmenter.net)
        self.frozen_layers = self._freeze_early_stages(cfg)
        self.criterion = SegmentationLoss(cfg.loss, cfg.data.ignore_index, class_weights)
        self.val_meter = ConfusionMeter(self.num_classes, cfg.data.ignore_index)  # renewed on the device per epoch
        self.last_scores: SegScores | None = None
        self.save_hyperparameters({"config": cfg.model_dump(mode="json")})

    def _freeze_early_stages(self, cfg: Config) -> list[nn.Module]:
        """``train.frozen_stages``: the encoder's layers at its first resolutions never train (mmseg's
        ``frozen_stages``). They are generic edge and colour filters; and since nothing upstream of them trains,
        no gradient flows through them: a CPU fine-tuning step of the lite0 FPN at 192² runs about 1.25× as fast."""
        if not cfg.train.frozen_stages:
            return []
        size = hw(cfg.augment.crop_size or cfg.augment.image_size)
        layers = early_layers(self.segmenter.net.get_submodule("encoder"), cfg.train.frozen_stages, size)
        for layer in layers:
            layer.requires_grad_(False)
        return layers

    def set_encoder_frozen(self, frozen: bool) -> None:
        """Freeze (or release) the encoder's weights; a frozen encoder's BatchNorm statistics stay fixed too.
        Released, its ``train.frozen_stages`` stay frozen."""
        self.encoder_frozen = frozen
        self.segmenter.net.encoder.requires_grad_(not frozen)
        for layer in self.frozen_layers:
            layer.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModule:
        """As nn.Module.train, but the encoder's BatchNorm stays in eval mode with ``train.freeze_bn`` or while
        the encoder is frozen (mmseg's ``norm_eval``): batch statistics of a few images would overwrite the
        pretrained running statistics. So does that of the ``train.frozen_stages`` layers, always. Lightning calls
        this at every switch between training and validation."""
        super().train(mode)
        if not mode:
            return self
        whole = self.cfg.train.freeze_bn or self.encoder_frozen
        for part in [self.segmenter.net.get_submodule("encoder")] if whole else self.frozen_layers:
            for layer in part.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input size (for inference: eval mode, no auxiliary outputs)."""
        return self.segmenter(images)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints from before the Segmenter keep the network under ``model.*``: rename to today's keys before
        Lightning loads them. The EMA callback keeps the raw weights under ``current_model_state`` (the averaged
        ones under ``state_dict``): both are renamed, since it loads the former into this module itself."""
        for key in ("state_dict", "current_model_state"):
            if key in checkpoint:
                checkpoint[key] = upgrade_state_dict(checkpoint[key])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, aux = self.segmenter.outputs(batch["image"])
        target = batch["mask"]
        loss = self.criterion(logits, target)
        for extra in aux:
            loss = loss + self.cfg.model.aux_loss_weight * self.criterion(extra, target)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}: lower optim.lr, "
                "set train.grad_clip, or use train.precision=32 / bf16-mixed instead of 16-mixed"
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(target))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_meter = ConfusionMeter(self.num_classes, self.cfg.data.ignore_index, self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        target = batch["mask"]
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        self.val_meter.update(logits.argmax(1), target)

    def on_validation_epoch_end(self) -> None:
        hist = self.val_meter.hist
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(hist)  # one confusion matrix over the whole split, as the competition scores it
        scores = self.val_meter.compute()
        self.last_scores = scores
        self.log("val/mIoU", scores.miou, prog_bar=True, sync_dist=False)
        self.log("val/pixel_acc", scores.pixel_acc, sync_dist=False)
        for name, iou in zip(self.cfg.data.classes, scores.iou, strict=True):
            if iou == iou:  # NaN: class absent from both sides
                self.log(f"val_iou/{name}", iou, sync_dist=False)

    def _budget_spent(self) -> Callable[[], float] | None:
        """The share of train.time_limit_minutes spent, from the Timer that Lightning's max_time installs (it
        counts the time of earlier launches too, restored from the checkpoint on resume)."""
        t = self.cfg.train
        if not (t.fit_schedule_to_time_limit and t.time_limit_minutes):
            return None
        timer = next(c for c in self.trainer.callbacks if isinstance(c, Timer))  # type: ignore[attr-defined]
        budget = t.time_limit_minutes * 60
        return lambda: timer.time_elapsed() / budget

    def configure_optimizers(self):
        optimizer = build_optimizer(self.cfg.optim, param_groups(self.cfg.optim, self.segmenter.net))
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        scheduler = build_scheduler(self.cfg.optim, optimizer, total, per_epoch, self._budget_spent())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
