"""The native API's request and response bodies, shared by every route that translates."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from contract.options import DEFAULT_BEAM_SIZE

# Finite ranges for every option, checked at the edge: a value outside them (1e999, a 400-digit
# number, length_penalty=1000, NaN) once killed or failed the scheduler for everyone.
MAX_LENGTH_PENALTY = 10.0
MAX_LENGTH_A = 10.0
MAX_LENGTH_B = 1024  # above any model's target limit, which caps the budget anyway
MAX_BEAM = 64  # the setting max_beam_size, checked per request, is the real bound
RANGES: dict[str, tuple[float, float]] = {
    "beam_size": (1, MAX_BEAM),
    "nbest": (1, MAX_BEAM),
    "length_penalty": (0.0, MAX_LENGTH_PENALTY),
    "max_length_a": (0.0, MAX_LENGTH_A),
    "max_length_b": (1, MAX_LENGTH_B),
}


def encodable(text: str) -> str:
    """``text`` itself; ValueError for a lone surrogate ("\\ud800"), which is no UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (lone surrogate at {exc.start})") from None
    return text


class TranslateRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, description="texts to translate, in order")
    source: str = Field(..., max_length=32, description="source language code, e.g. en")
    target: str = Field(..., max_length=32, description="target language code, e.g. de")
    beam_size: int = Field(DEFAULT_BEAM_SIZE, ge=1, le=MAX_BEAM, description="1 = greedy")
    length_penalty: float = Field(1.0, ge=0.0, le=MAX_LENGTH_PENALTY, allow_inf_nan=False)
    max_length_a: float = Field(
        1.5,
        ge=0.0,
        le=MAX_LENGTH_A,
        allow_inf_nan=False,
        description="output budget a * source_tokens + b",
    )
    max_length_b: int = Field(10, ge=1, le=MAX_LENGTH_B)
    nbest: int = Field(1, ge=1, le=MAX_BEAM, description="alternatives per text (≤ beam_size)")

    @field_validator(*RANGES, mode="before")
    @classmethod
    def in_range(cls, value: object, info: ValidationInfo) -> object:
        """A number outside its range (NaN and infinities included) named with the range."""
        low, high = RANGES[str(info.field_name)]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not low <= value <= high:  # type: ignore[operator]  # False for NaN
            raise ValueError(f"must be a finite number in [{low:g}, {high:g}]")
        return value

    @field_validator("texts")
    @classmethod
    def texts_are_unicode(cls, texts: list[str]) -> list[str]:
        return [encodable(t) for t in texts]

    @field_validator("source", "target")
    @classmethod
    def code_is_unicode(cls, code: str) -> str:
        return encodable(code)


class Translation(BaseModel):
    text: str
    score: float
    tokens: int
    finish_reason: str  # eos | length | empty
    alternatives: list[str] = []


class TranslateResponse(BaseModel):
    translations: list[Translation]
    model: str
    timings: dict[str, float]


class ErrorBody(BaseModel):
    """Every error's body (DeepL's routes add ``message``, which its clients read)."""

    error: str
    error_type: str
    message: str | None = None


# Declared on every router, so the OpenAPI schema tells clients (and schemathesis) the truth.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "unsupported language pair, or a body that cannot be parsed",
        401: "missing API key",
        403: "wrong API key",
        404: "no such route",
        405: "method not allowed on this route",
        408: "body not received within body_timeout",
        413: "body too large, or more sentences than the queue can ever hold",
        422: "invalid request: the message names the field and its limit",
        429: "queue full: retry after Retry-After seconds",
        500: "a bug: logged with the request's x-request-id",
        503: "shutting down",
        504: "no answer within request_timeout",
    }.items()
}
