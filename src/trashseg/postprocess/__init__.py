"""Postprocess stage: dense CRF refinement of predicted probabilities."""
