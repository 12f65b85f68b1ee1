"""Benchmarks and load generators: beside the product, never inside the serving image.

``engine`` compares decoding engines, ``export`` the exported graphs, ``serve`` the HTTP service,
``loadgen`` drives a server from its own process. ``tongyeok bench ...`` runs them.
"""
