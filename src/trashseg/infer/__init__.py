"""Infer stage: predictor with flip/scale TTA and sliding windows, the prediction folder, ONNX export/runtime."""
