"""The reliability suite runs against the same real server on loopback as tests/service."""

from tests.service.conftest import server  # noqa: F401  (the module-scoped fixture)
