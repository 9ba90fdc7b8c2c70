"""Data stage: COCO reading and validation, mask rasterisation and cache, checks, splits, generated data."""
