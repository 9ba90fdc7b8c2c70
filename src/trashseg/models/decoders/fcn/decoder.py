"""The FCN head of mmsegmentation's ``FCNHead`` (Long et al., "Fully Convolutional Networks", 2015)."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.base import Conv2dReLU
from torch import nn


class FCNDecoder(nn.Module):
    """3×3 conv-BN-ReLU blocks on the deepest encoder feature, optionally re-reading that feature.

    ``concat_input`` concatenates the encoder feature with the convolved one and fuses them with one more
    3×3 conv-BN-ReLU, as mmseg's FCNHead does, so the head sees both the raw and the refined context.
    The trailing dropout is mmseg's ``dropout_ratio`` applied just before the classifier.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 512,
        num_convs: int = 2,
        concat_input: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"FCN needs decoder_num_convs >= 1, got {num_convs}")
        self.convs = nn.Sequential(
            *(
                Conv2dReLU(in_channels if i == 0 else out_channels, out_channels, kernel_size=3, padding=1)
                for i in range(num_convs)
            )
        )
        self.conv_cat = (
            Conv2dReLU(in_channels + out_channels, out_channels, kernel_size=3, padding=1) if concat_input else None
        )
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        out = self.convs(x)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.dropout(out)
