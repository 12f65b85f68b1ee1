"""Decoding over a package: the engine's step API, the search step, the running rows, and the
text-in text-out translator the CLI uses."""
