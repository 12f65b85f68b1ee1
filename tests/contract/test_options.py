"""Decoding options are finite and bounded, and no length computation can overflow."""

from __future__ import annotations

import math

import pytest

from contract.options import MAX_LENGTH_PENALTY, OPTIONS, SearchOptions


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_length_a", math.inf),  # JSON's 1e999
        ("max_length_a", math.nan),
        ("max_length_a", 1e6),
        ("max_length_b", 10**400),  # 1 followed by 400 zeros
        ("length_penalty", 1000.0),
        ("length_penalty", -math.inf),
        ("min_length", 10**9),
    ],
)
def test_out_of_bounds_options_are_refused_naming_the_limit(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"{field} must be in \[.+\], got"):
        SearchOptions(**{field: value})  # type: ignore[arg-type]


def unchecked(**values: float) -> SearchOptions:
    """Options that skipped validation (as a bug elsewhere might let through)."""
    options = SearchOptions(beam_size=1)
    for name, value in values.items():
        object.__setattr__(options, name, value)
    return options


def test_lengths_stay_in_range_even_past_validation() -> None:
    assert unchecked(max_length_a=math.inf).max_length(10, cap=64) == 64
    assert unchecked(max_length_a=math.nan).max_length(10, cap=64) == 64
    assert unchecked(length_penalty=1000.0).length_norm(300) == math.inf
    assert SearchOptions(length_penalty=MAX_LENGTH_PENALTY).length_norm(1024) < math.inf
    assert SearchOptions(length_penalty=0.6).length_norm(7) == 7**0.6  # the usual formula


def test_options_are_taken_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        SearchOptions(4, 1.0)  # type: ignore[misc]


def test_the_api_and_the_cli_derive_every_option_from_its_declaration() -> None:
    """One declaration per option: the native API's field (default, bounds, help) and the
    translate command's flag come from it, and nowhere else declares them."""
    from service.usecase.schemas import TranslateRequest
    from tongyeok.cli import build_parser

    schema = TranslateRequest.model_json_schema()["properties"]
    api = [o for o in OPTIONS if "api" in o.on]
    not_options = {"texts", "source", "target", "api_key", "glossary"}
    assert {o.name for o in api} == set(schema) - not_options
    for option in api:
        field = schema[option.name]
        assert field["default"] == option.default and field["minimum"] == option.low
        assert field.get("maximum", math.inf) == option.high
        assert field["description"] == option.help
    args = build_parser().parse_args(["translate", "x"])
    for option in OPTIONS:
        assert hasattr(args, option.name) == ("cli" in option.on)
    assert SearchOptions.of(args) == SearchOptions()
    flags = build_parser().parse_args(["translate", "--max-length-b", "7", "--beam-size", "1"])
    assert SearchOptions.of(flags) == SearchOptions(beam_size=1, max_length_b=7)
