"""trashseg: semantic segmentation of recycling waste, from COCO annotations to a submission CSV."""

__version__ = "0.1.0"
