"""OCRNet as an smp ``SegmentationModel``, with an auxiliary output while training."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import SegmentationHead, SegmentationModel
from segmentation_models_pytorch.base.hub_mixin import supports_config_loading
from segmentation_models_pytorch.base.utils import is_torch_compiling
from segmentation_models_pytorch.encoders import get_encoder

from trashseg.models.decoders.ocrnet.decoder import OCRNetDecoder
from trashseg.models.registry import register_arch


@register_arch("OCRNet")
class OCRNet(SegmentationModel):
    """`OCRNet`__ (Object-Contextual Representations), as mmsegmentation's ``ocrnet_hr48``.

    The encoder's features from stride 4 down are fused at stride 4; a soft-object-region head predicts coarse
    logits, whose class regions give each pixel an object context via attention (see ``OCRNetDecoder``).

    With ``tu-hrnet_w48`` pass ``feature_location=""`` (a timm argument, forwarded through ``kwargs``) to fuse
    the raw HRNet branches (48+96+192+384 channels) as the paper does; timm's default returns the
    classification head's widened "incre" features (128+256+512+1024) instead.

    Args:
        encoder_name: smp encoder name, or a timm model as ``tu-<name>``. Default ``tu-hrnet_w48``.
        encoder_depth: Number of encoder stages used (2–5); every stage from stride 4 down is fused.
        encoder_weights: ``None`` (random init) or pretrained weights (``"imagenet"``; for ``tu-`` encoders any
            value means timm's pretrained weights for the name, e.g. ``tu-hrnet_w48.ms_in1k``).
        ocr_mid_channels: Channels of the pixel features and of the object-contextual representation.
        ocr_key_channels: Channels of the attention's queries, keys and values.
        decoder_dropout: Dropout2d rate after the final fusion, before the classifier.
        in_channels: Input image channels.
        classes: Number of output channels (classes).
        kwargs: Passed to the encoder; only ``tu-`` (timm) encoders accept extra arguments.

    Returns:
        ``torch.nn.Module``: **OCRNet**. ``forward`` returns logits (N, classes, H, W) in eval mode and
        ``(logits, region_logits)`` in training mode, both at the input size; ``region_logits`` is the soft
        object region (auxiliary) prediction to supervise with the same target.

    .. __: https://arxiv.org/abs/1909.11065
    """

    # Encoders such as HRNet fuse branches by fixed scale factors, so inputs must be multiples of the stride.
    requires_divisible_input_shape = True

    @supports_config_loading
    def __init__(
        self,
        encoder_name: str = "tu-hrnet_w48",
        encoder_depth: int = 5,
        encoder_weights: str | None = "imagenet",
        ocr_mid_channels: int = 512,
        ocr_key_channels: int = 256,
        decoder_dropout: float = 0.05,
        in_channels: int = 3,
        classes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.encoder = get_encoder(
            encoder_name,
            in_channels=in_channels,
            depth=encoder_depth,
            weights=encoder_weights,
            **kwargs,
        )
        self.decoder = OCRNetDecoder(
            encoder_channels=self.encoder.out_channels,
            classes=classes,
            mid_channels=ocr_mid_channels,
            key_channels=ocr_key_channels,
            dropout=decoder_dropout,
        )
        self.segmentation_head = SegmentationHead(in_channels=ocr_mid_channels, out_channels=classes, kernel_size=1)
        self.classification_head = None
        self.name = f"ocrnet-{encoder_name}"
        self.initialize()

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits at the input size; in training mode also the auxiliary soft-object-region logits."""
        if not (torch.jit.is_scripting() or torch.jit.is_tracing() or is_torch_compiling()):
            self.check_input_shape(x)

        features = self.encoder(x)
        decoder_output, region_logits = self.decoder(features)
        masks = _resize(self.segmentation_head(decoder_output), x)
        if self.training:
            return masks, _resize(region_logits, x)
        return masks


def _resize(logits: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize to the spatial size of `like` (mmseg's ``resize`` with align_corners=False)."""
    return F.interpolate(logits, size=like.shape[-2:], mode="bilinear", align_corners=False)
