"""The torch-free contract at the bottom of Tongyeok: what every other package may import.

The model-package format (``package``, ``spec``), decoding options and hypotheses (``options``),
the tokenizer (``tokenizer``) and the version. It imports none of ``model/``, ``export/``,
``service/``, ``bench/`` or the CLI: ``tests/test_layers.py`` holds every package to its layer.
"""
