"""Tongyeok (통역): neural machine translation, trained, exported to ONNX and served."""

from contract.version import __version__

__all__ = ["__version__"]
