"""The model stage: architectures and encoders by name, as in timm and smp.

``create_model(cfg.model, num_classes)`` builds ``model.arch`` (any smp architecture by its class name, or our
``OCRNet`` and ``FCN``) on ``model.encoder`` (an smp encoder name or ``tu-<timm name>``), passes
``model.params`` to the architecture, and initialises the encoder from ``model.weights``: null (random), a
library weights name such as ``imagenet``, or a local weights file.

Contract for every architecture: forward returns logits; in training mode an architecture with auxiliary heads
returns (logits, *aux_logits). All outputs are (N, num_classes, H, W) at the input size. smp's architectures
and FCN always return the logits tensor; OCRNet returns ``(logits, soft_region_logits)`` while training (weigh
the auxiliary loss with ``model.aux_loss_weight``) and the logits tensor in eval mode.

``Segmenter`` (models/segmenter.py) is what a trained model is: network, input normalisation, class names and the
resolved config; ``load_model(path)`` opens a run folder, a checkpoint or an exported ONNX model for inference.

New architectures register with ``@register_arch("Name")``; see ``models/decoders/`` for the package layout.
"""

from trashseg.models import decoders  # noqa: F401  (importing it registers OCRNet and FCN)
from trashseg.models.factory import create_model
from trashseg.models.registry import list_archs, register_arch
from trashseg.models.segmenter import Segmenter, load_model

__all__ = ["Segmenter", "create_model", "list_archs", "load_model", "register_arch"]
