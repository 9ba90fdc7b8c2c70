from trashseg.models.decoders.fcn.model import FCN

__all__ = ["FCN"]
