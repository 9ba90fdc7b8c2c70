"""Serve stage: the web demo over a run folder, checkpoint or ONNX model."""
