from trashseg.models.decoders.ocrnet.model import OCRNet

__all__ = ["OCRNet"]
