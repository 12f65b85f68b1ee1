"""Tongyeok (통역): neural machine translation, trained, exported to ONNX and served."""

__version__ = "0.1.0"
