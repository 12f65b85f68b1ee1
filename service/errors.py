"""The service's error hierarchy: each error knows its HTTP status and its metric label."""

from __future__ import annotations


def error_body(error: str, error_type: str) -> dict[str, str]:
    """Every error response's JSON: what is wrong, and a stable type to branch on."""
    return {"error": error, "error_type": error_type}


class ServiceError(Exception):
    status = 500
    error_type = "internal"

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(ServiceError):
    status, error_type = 422, "invalid_request"


class PayloadTooLarge(ServiceError):
    status, error_type = 413, "payload_too_large"


class UnsupportedPair(ServiceError):
    status, error_type = 400, "unsupported_language_pair"


class Unauthorized(ServiceError):
    status, error_type = 401, "unauthorized"


class QueueFull(ServiceError):
    status, error_type = 429, "queue_full"


class DeadlineExceeded(ServiceError):
    status, error_type = 504, "deadline_exceeded"


class ShuttingDown(ServiceError):
    status, error_type = 503, "shutting_down"


class EngineFailure(ServiceError):
    status, error_type = 500, "engine_failure"


class Cancelled(ServiceError):
    """The client went away; nobody reads the answer, but the metric counts it."""

    status, error_type = 499, "cancelled"
