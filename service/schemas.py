"""The native API's request and response bodies, shared by every route that translates."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contract.options import DEFAULT_BEAM_SIZE


class TranslateRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, description="texts to translate, in order")
    source: str = Field(..., description="source language code, e.g. en")
    target: str = Field(..., description="target language code, e.g. de")
    beam_size: int = Field(DEFAULT_BEAM_SIZE, ge=1, description="1 = greedy")
    length_penalty: float = Field(1.0, ge=0.0)
    max_length_a: float = Field(1.5, ge=0.0, description="output budget a * source_tokens + b")
    max_length_b: int = Field(10, ge=1)
    nbest: int = Field(1, ge=1, description="alternatives per text (≤ beam_size)")


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
