"""The LightningModule: uint8 batches normalised on the device, weighted losses with auxiliary heads, and the
competition's confusion-matrix mIoU accumulated on the device over the whole validation split."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from trashseg.config import Config
from trashseg.metrics import ConfusionMeter, SegScores
from trashseg.models import create_model
from trashseg.train.losses import SegmentationLoss
from trashseg.train.optim import build_optimizer, build_scheduler

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NonFiniteLossError(RuntimeError):
    """Raised from a training step whose loss is NaN/inf; the run stops and keeps its last good checkpoint."""


def split_outputs(out: torch.Tensor | tuple | list) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Models return logits, or (logits, *aux_logits) in training mode when they have auxiliary heads."""
    if isinstance(out, (tuple, list)):
        return out[0], list(out[1:])
    return out, []


class SegmentationModule(pl.LightningModule):
    def __init__(self, cfg: Config, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.data.num_classes
        self.model = create_model(cfg.model, self.num_classes)
        self.criterion = SegmentationLoss(cfg.loss, cfg.data.ignore_index, class_weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.val_meter: ConfusionMeter | None = None
        self.last_scores: SegScores | None = None
        self.save_hyperparameters({"config": cfg.model_dump(mode="json")})

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """B×H×W×3 uint8 → normalised float N×C×H×W; the permute makes it channels_last for free."""
        x = images.permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.train.channels_last else x.contiguous()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input size (for inference: eval mode, no auxiliary outputs)."""
        return split_outputs(self.model(self.normalize(images)))[0]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, aux = split_outputs(self.model(self.normalize(batch["image"])))
        target = batch["mask"]
        loss = self.criterion(logits, target)
        for extra in aux:
            loss = loss + self.cfg.model.aux_loss_weight * self.criterion(extra, target)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {self.current_epoch}, step {self.global_step}; the run stopped "
                "and its last good checkpoint is kept (checkpoints/last.ckpt). Lower optim.lr, set train.grad_clip, "
                "or use train.precision=32 / bf16-mixed instead of 16-mixed.")
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
        for name, iou in zip(self.cfg.data.classes, scores.iou):
            if iou == iou:  # NaN: class absent from both sides
                self.log(f"val_iou/{name}", iou, sync_dist=False)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.cfg.optim, self.parameters())
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        scheduler = build_scheduler(self.cfg.optim, optimizer, total, per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def load_module(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> SegmentationModule:
    """Rebuild a trained module from its checkpoint alone (the resolved config travels inside it)."""
    from trashseg.config import validate
    from trashseg.errors import TrashsegError

    path = Path(checkpoint)
    if not path.is_file():
        raise TrashsegError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    try:
        cfg = validate(ckpt["hyper_parameters"]["config"], str(path))
    except KeyError:
        raise TrashsegError(f"{path}: not a trashseg checkpoint (no config inside)") from None
    cfg.model.weights = None  # the checkpoint holds the trained weights; never fetch pretrained ones again
    state = ckpt["state_dict"]
    module = SegmentationModule(cfg, class_weights=state.get("criterion.terms.ce.weight"))
    module.load_state_dict(state)
    return module.eval()
