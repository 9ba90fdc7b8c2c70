"""Our architectures, packaged like smp's own (``<name>/model.py`` + ``<name>/decoder.py``).

Importing this package registers them with ``trashseg.models.registry``.
"""

from trashseg.models.decoders.fcn import FCN
from trashseg.models.decoders.ocrnet import OCRNet

__all__ = ["FCN", "OCRNet"]
