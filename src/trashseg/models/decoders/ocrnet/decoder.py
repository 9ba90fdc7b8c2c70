"""The OCR head (Yuan et al., "Object-Contextual Representations for Semantic Segmentation", ECCV 2020).

Layout and defaults follow the authors' HRNet-OCR code and mmsegmentation's ``ocrnet_hr48``: every pixel is
described by the class-wise "object regions" it most likely belongs to, found with a coarse auxiliary
segmentation of the same features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import Conv2dReLU
from torch import nn


class SpatialGather(nn.Module):
    """One feature vector per class: the average of pixel features weighted by the soft object regions.

    The softmax runs over pixels (not classes), so each class's weights sum to one across the image.
    Returns (N, C, K, 1) so the 1×1 conv-BN-ReLU projections of the attention apply to it unchanged.
    """

    def forward(self, features: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
        regions = F.softmax(region_logits.flatten(2), dim=2)  # N, K, HW
        context = regions @ features.flatten(2).transpose(1, 2)  # N, K, C
        return context.transpose(1, 2).unsqueeze(-1)


class ObjectAttention(nn.Module):
    """Pixel-to-object-region attention: scaled dot product of pixel queries with class-region keys.

    Query and key take two 1×1 conv-BN-ReLU each, value and output one, as mmseg's ``ObjectAttentionBlock``;
    the result is concatenated with the pixel features and fused by a 1×1 conv-BN-ReLU (+ dropout), giving
    the augmented representation the classifier reads.
    """

    def __init__(self, channels: int, key_channels: int, dropout: float) -> None:
        super().__init__()
        self.query = nn.Sequential(Conv2dReLU(channels, key_channels, 1), Conv2dReLU(key_channels, key_channels, 1))
        self.key = nn.Sequential(Conv2dReLU(channels, key_channels, 1), Conv2dReLU(key_channels, key_channels, 1))
        self.value = Conv2dReLU(channels, key_channels, 1)
        self.out = Conv2dReLU(key_channels, channels, 1)
        self.fuse = nn.Sequential(Conv2dReLU(2 * channels, channels, 1), nn.Dropout2d(dropout))

    def forward(self, pixels: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
        n, _, h, w = pixels.shape
        query = self.query(pixels).flatten(2).transpose(1, 2).unsqueeze(1)  # N, 1, HW, Ck
        key = self.key(objects).flatten(2).transpose(1, 2).unsqueeze(1)  # N, 1, K, Ck
        value = self.value(objects).flatten(2).transpose(1, 2).unsqueeze(1)  # N, 1, K, Ck
        context = F.scaled_dot_product_attention(query, key, value)  # softmax(QKᵀ/√Ck)·V
        context = self.out(context.squeeze(1).transpose(1, 2).reshape(n, -1, h, w))
        return self.fuse(torch.cat([context, pixels], dim=1))


class OCRNetDecoder(nn.Module):
    """Multi-resolution fusion, soft object regions, and object-contextual representations.

    All encoder features from stride 4 down (for HRNet: its four branches) are upsampled to the stride-4 size
    and concatenated, as HRNetV2 does. An auxiliary head turns them into coarse class logits (the soft object
    regions, also supervised during training); a 3×3 conv-BN-ReLU reduces them to ``mid_channels`` pixel
    features, which then attend to the class-region representations.

    Returns ``(features, region_logits)`` at stride 4: the model's segmentation head classifies the first, and
    the second is the auxiliary output.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        classes: int,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        if len(encoder_channels) < 3:
            raise ValueError("OCRNet needs encoder_depth >= 2 (it starts from the stride-4 features)")
        in_channels = sum(encoder_channels[2:])
        self.region_head = nn.Sequential(
            Conv2dReLU(in_channels, in_channels, 1),
            nn.Conv2d(in_channels, classes, kernel_size=1),
        )
        self.bottleneck = Conv2dReLU(in_channels, mid_channels, kernel_size=3, padding=1)
        self.gather = SpatialGather()
        self.attention = ObjectAttention(mid_channels, key_channels, dropout)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        size = features[2].shape[-2:]
        x = torch.cat(
            [features[2]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[3:]],
            dim=1,
        )
        region_logits = self.region_head(x)
        pixels = self.bottleneck(x)
        objects = self.gather(pixels, region_logits)
        return self.attention(pixels, objects), region_logits
