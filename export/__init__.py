"""Checkpoint to ONNX model package (see the export issue)."""
