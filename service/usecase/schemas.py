"""The native API's request and response bodies, shared by every route that translates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from contract.options import OPTION, OPTIONS, Option, bounds_text


def encodable(text: str) -> str:
    """``text`` itself; ValueError for a lone surrogate ("\\ud800"), which is no UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (lone surrogate at {exc.start})") from None
    return text


class TextsAndPair(BaseModel):
    """What every translation request has; its decoding options are added below. A field it
    does not know is refused (422 naming it), never ignored: ``"beam_sise": 2`` is a typo."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(..., min_length=1, description="texts to translate, in order")
    source: str = Field(
        ...,
        max_length=32,
        description="source language code, e.g. en; auto: detected among the sources served "
        "into target (the response's detected_source)",
    )
    target: str = Field(..., max_length=32, description="target language code, e.g. de")
    api_key: str | None = Field(
        None, description="the API key, when not sent in a header (a header wins)"
    )
    glossary: str | None = Field(
        None,
        max_length=64,
        description="a glossary's id (made with DeepL's /v2/glossaries or /v3/glossaries): its "
        "target terms are used wherever its source terms are",
    )

    # Finite ranges for every option, checked at the edge: a value outside them (1e999, a
    # 400-digit number, length_penalty=1000, NaN) once killed or failed the scheduler for everyone.
    @field_validator("*", mode="before")
    @classmethod
    def in_range(cls, value: object, info: ValidationInfo) -> object:
        """A number outside its option's range (NaN and infinities included), with the range."""
        spec = OPTION.get(str(info.field_name))
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if spec and number and not spec.low <= value <= spec.high:  # type: ignore[operator]
            raise ValueError(f"must be a finite number {bounds_text(spec.low, spec.high)}")
        return value

    @field_validator("texts")
    @classmethod
    def texts_are_unicode(cls, texts: list[str]) -> list[str]:
        return [encodable(t) for t in texts]

    @field_validator("source", "target")
    @classmethod
    def code_is_unicode(cls, code: str) -> str:
        """The code in lower case, as packages name their languages ("EN" is en)."""
        return encodable(code).lower()


def option_field(spec: Option) -> Any:
    """The request field of a decoding option, from its declaration in ``contract/options.py``."""
    bounds: dict[str, Any] = {"ge": spec.low}
    if spec.high < float("inf"):
        bounds["le"] = spec.high
    if spec.kind is float:
        bounds["allow_inf_nan"] = False
    return (spec.kind, Field(spec.default, description=spec.help, **bounds))


if TYPE_CHECKING:  # the options are read through SearchOptions.of, never as attributes

    class TranslateRequest(TextsAndPair):
        pass

else:
    TranslateRequest = create_model(
        "TranslateRequest",
        __base__=TextsAndPair,
        __module__=__name__,
        **{o.name: option_field(o) for o in OPTIONS if "api" in o.on},
    )


class Translation(BaseModel):
    text: str
    score: float
    tokens: int
    finish_reason: str  # eos | length | empty
    alternatives: list[str] = []


class SourceWarning(BaseModel):
    """A text clearly not in the request's source language, so its translation is likely
    nonsense. Given only when the detector is sure and the text long enough to judge
    (service/usecase/detect.py); the text is translated all the same."""

    code: Literal["source_language_mismatch"] = "source_language_mismatch"
    index: int = Field(description="which text: texts[index]")
    detected: str = Field(
        description="the language the text looks like (ISO 639-1; zxx: no language at all)"
    )
    confidence: float = Field(description="the detector's probability for it, 0-1")
    message: str = Field(description="the same in one sentence, for a person")


class TranslateResponse(BaseModel):
    translations: list[Translation]
    model: str
    timings: dict[str, float]
    warnings: list[SourceWarning] = Field(
        default_factory=list, description="texts that look wrong for the request; empty if none"
    )
    detected_source: str | None = Field(
        None, description="with source auto: the source detected (and translated from)"
    )
