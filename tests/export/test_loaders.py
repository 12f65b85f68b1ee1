"""Weight loaders register themselves, and each becomes a command with the flags it declares."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.loaders import REGISTRY, Loader, loaders, register_loader
from export.source import ModelSource
from tongyeok.cli import build_parser


class ToyLoader(Loader):
    command = "import-toy"
    help = "import a toy directory"
    description = "A loader written in a test."
    epilog = "example: tongyeok import-toy DIR --out models/xx-yy"
    example_name = "xx-yy"

    def declare_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--layers", type=int, default=6, help="layers to keep")

    def load(self, args: argparse.Namespace) -> ModelSource:
        raise ValueError(f"{args.directory}: toy loaders load nothing")


@pytest.fixture
def toy_registered() -> Iterator[None]:
    loaders()  # the package's own loaders first, as the CLI sees them
    register_loader(ToyLoader)
    yield
    del REGISTRY[ToyLoader.command]


def test_the_shipped_loaders_are_the_export_import_and_pull_commands() -> None:
    assert [loader.command for loader in loaders()] == ["export", "import", "pull"]


def test_a_registered_loader_is_a_command_with_its_own_and_the_package_flags(
    toy_registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tongyeok.cli import main

    args = build_parser().parse_args(
        ["import-toy", "toys/a", "--layers", "3", "--out", "x", "--precision", "int8"]
    )
    assert (args.directory, args.layers, args.out, args.precision, args.verify) == (
        "toys/a",
        3,
        "x",
        "int8",
        True,
    )
    assert main(["import-toy", "toys/a", "--out", str(tmp_path / "x")]) == 1
    assert "tongyeok import-toy: error: toys/a: toy loaders load nothing" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_two_loaders_for_one_command_are_refused(toy_registered: None) -> None:
    with pytest.raises(ValueError, match="two loaders for the command 'import-toy'"):
        register_loader(ToyLoader)
