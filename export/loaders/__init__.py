"""Sources of weights: each is a loader that registers itself and declares its own CLI arguments.

The export pipeline is one (load -> validate -> trace -> convert -> package -> verify); only the
first step depends on where the weights come from. A loader names its command, declares the
arguments only it reads, and turns the parsed arguments into a ``ModelSource``
(export/source.py); ``tongyeok/commands/export.py`` builds one command per registered loader and
adds the flags every package takes (``--out``, ``--precision``, ``--name``, ``--cache``,
``--no-verify``). CTranslate2's converters are the model (``declare_arguments``, a registering
decorator).

Every module of this package is imported when the CLI builds its parser (``loaders``), the
torch-free serving image included: a loader module imports only the standard library at its top,
and its loading code (torch and all) inside ``load``. A new source of weights is one module here
with a ``@register_loader`` class.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from export.source import ModelSource


class Loader(ABC):
    """One source of weights and its command."""

    command: ClassVar[str]  # e.g. "import": ``tongyeok import ...``
    help: ClassVar[str]  # one line, listed by ``tongyeok --help``
    description: ClassVar[str]
    epilog: ClassVar[str]
    example_name: ClassVar[str]  # what ``--name`` defaults to for a typical source, e.g. "en-de"
    # ``--out`` optional: the package goes into the model repository ``serve`` would use.
    out_in_repository: ClassVar[bool] = False
    default_precision: ClassVar[str] = "fp32"

    @abstractmethod
    def declare_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add where the weights are and every flag only this loader reads."""

    @abstractmethod
    def load(self, args: argparse.Namespace) -> ModelSource:
        """The model in our layout, its languages and tokenizer files; refuses what it cannot
        represent with a ``ValueError`` naming it."""

    def loading(self, args: argparse.Namespace) -> str:
        """What the load step does, said as it starts (the command's first status line)."""
        return "loading the weights"

    def wrote(self, source: ModelSource, out: Path) -> str:
        """The line printed once the package is written."""
        return f"wrote {out}"


REGISTRY: dict[str, Loader] = {}
L = TypeVar("L", bound=type[Loader])


def register_loader(cls: L) -> L:
    """Class decorator: one instance of ``cls`` serves its command."""
    if cls.command in REGISTRY:
        raise ValueError(f"two loaders for the command {cls.command!r}")
    REGISTRY[cls.command] = cls()
    return cls


def loaders() -> list[Loader]:
    """Every loader, by its module's name: each module of this package is imported once."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return sorted(REGISTRY.values(), key=lambda loader: type(loader).__module__)
