"""FCN as an smp ``SegmentationModel``: the trainer handles it exactly like ``smp.DeepLabV3``."""

from __future__ import annotations

from typing import Any, Literal

from segmentation_models_pytorch.base import SegmentationHead, SegmentationModel
from segmentation_models_pytorch.base.hub_mixin import supports_config_loading
from segmentation_models_pytorch.encoders import get_encoder

from trashseg.models.decoders.fcn.decoder import FCNDecoder
from trashseg.models.registry import register_arch


@register_arch("FCN")
class FCN(SegmentationModel):
    """`FCN`__ with a dilated encoder, as mmsegmentation's ``fcn_r101-d8`` (FCNHead on a ResNet-101 at stride 8).

    Args:
        encoder_name: smp encoder name, or a timm model as ``tu-<name>``. Default ``resnet101``.
        encoder_depth: Number of encoder stages used (3–5); the head reads the deepest one.
        encoder_weights: ``None`` (random init) or a pretrained weights name of the encoder (``"imagenet"``).
        encoder_output_stride: 8 or 16 dilate the last stages (smp's ``make_dilated``, as in DeepLabV3) so the
            head sees a finer feature map; 32 keeps the encoder as is (for encoders that cannot dilate, such as
            densenet, vgg or xception).
        decoder_channels: Channels of the head's 3×3 convolutions.
        decoder_num_convs: Number of 3×3 conv-BN-ReLU blocks.
        decoder_concat_input: Concatenate the encoder feature with the convolved one, then fuse with a 3×3 conv.
        decoder_dropout: Dropout2d rate before the 1×1 classifier.
        in_channels: Input image channels.
        classes: Number of output channels (classes).
        kwargs: Passed to the encoder; only ``tu-`` (timm) encoders accept extra arguments.

    Returns:
        ``torch.nn.Module``: **FCN**; ``forward`` returns logits (N, classes, H, W) in train and eval mode.

    .. __: https://arxiv.org/abs/1411.4038
    """

    # The head upsamples by the encoder's output stride, so only multiples of it come back at the input size.
    requires_divisible_input_shape = True

    @supports_config_loading
    def __init__(
        self,
        encoder_name: str = "resnet101",
        encoder_depth: int = 5,
        encoder_weights: str | None = "imagenet",
        encoder_output_stride: Literal[8, 16, 32] = 8,
        decoder_channels: int = 512,
        decoder_num_convs: int = 2,
        decoder_concat_input: bool = True,
        decoder_dropout: float = 0.1,
        in_channels: int = 3,
        classes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if encoder_output_stride not in (8, 16, 32):
            raise ValueError(f"FCN supports encoder_output_stride 8, 16 or 32, got {encoder_output_stride}")

        self.encoder = get_encoder(
            encoder_name,
            in_channels=in_channels,
            depth=encoder_depth,
            weights=encoder_weights,
            output_stride=encoder_output_stride,
            **kwargs,
        )
        self.decoder = FCNDecoder(
            in_channels=self.encoder.out_channels[-1],
            out_channels=decoder_channels,
            num_convs=decoder_num_convs,
            concat_input=decoder_concat_input,
            dropout=decoder_dropout,
        )
        self.segmentation_head = SegmentationHead(
            in_channels=decoder_channels,
            out_channels=classes,
            kernel_size=1,
            upsampling=self.encoder.output_stride,
        )
        self.classification_head = None
        self.name = f"fcn-{encoder_name}"
        self.initialize()
