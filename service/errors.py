"""The service's error hierarchy: each error knows its HTTP status and its metric label."""

from __future__ import annotations


def error_body(error: str, error_type: str) -> dict[str, str]:
    """Every error response's JSON: what is wrong, and a stable type to branch on (a message
    that quotes a lone surrogate from the request is made encodable, not a second error)."""
    return {"error": error.encode("utf-8", "replace").decode("utf-8"), "error_type": error_type}


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


class BodyTimeout(ServiceError):
    """The client sent its body too slowly: a slow upload must not hold a connection forever."""

    status, error_type = 408, "body_timeout"


class BadRequest(ServiceError):
    status, error_type = 400, "bad_request"


class NotFound(ServiceError):
    status, error_type = 404, "not_found"


class MethodNotAllowed(ServiceError):
    status, error_type = 405, "method_not_allowed"


class UnsupportedPair(ServiceError):
    status, error_type = 400, "unsupported_language_pair"


class Unauthorized(ServiceError):
    """No key given (DeepL's and LibreTranslate's clients expect 401 for that)."""

    status, error_type = 401, "unauthorized"


class Forbidden(ServiceError):
    """A key given, but not one of ours (their clients expect 403: DeepL's raises
    AuthorizationException on it)."""

    status, error_type = 403, "forbidden"


class NotSupported(ServiceError):
    """A route clients call that this server cannot answer yet (language detection)."""

    status, error_type = 501, "not_implemented"


class QueueFull(ServiceError):
    status, error_type = 429, "queue_full"


class Overloaded(QueueFull):
    """Too many requests in flight at the door, before any work (api/shed.py)."""

    error_type = "overloaded"


class DeadlineExceeded(ServiceError):
    status, error_type = 504, "deadline_exceeded"


class ShuttingDown(ServiceError):
    status, error_type = 503, "shutting_down"


class Retired(ShuttingDown):
    """The model was replaced or removed by a reload after the request was routed to it: the
    request is routed again (a 503 only if it ever escapes)."""


class EngineFailure(ServiceError):
    status, error_type = 500, "engine_failure"


class EngineUnavailable(ServiceError):
    """The engine process an HTTP worker sends its jobs to has stopped (``workers`` > 1): its
    waiting requests are answered with this, not left to hang, until it is restarted."""

    status, error_type = 503, "engine_unavailable"


class Cancelled(ServiceError):
    """The client went away; nobody reads the answer, but the metric counts it."""

    status, error_type = 499, "cancelled"


class Internal(ServiceError):
    """A bug: answered as JSON (and counted) instead of a bare-text 500."""

    status, error_type = 500, "internal"


# What the framework (routing, body parsing) raises, as the service's own errors.
FRAMEWORK_ERRORS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    422: InvalidRequest,
}


def for_status(status: int, message: str, headers: dict[str, str] | None = None) -> ServiceError:
    """The service's error for a status the framework raised (404, 405, 413, ...)."""
    error = FRAMEWORK_ERRORS.get(status, ServiceError)(message, headers)
    if type(error) is ServiceError:
        error.status, error.error_type = status, f"http_{status}"
    return error


class SourceTooLong(ValueError):
    """A sentence longer than the model takes: raised by the engine's one length check, mapped to
    InvalidRequest (422, naming the text) by the use case, which alone knows which text it was."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"source has {tokens} tokens; the model takes at most {limit}")
        self.tokens, self.limit = tokens, limit
