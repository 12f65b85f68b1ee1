"""The project's version, written into packages and exported as ``tongyeok_build_info``."""

__version__ = "0.1.0"
