"""Commands that write model packages and other formats: one per weight loader, and ``export-hf``.

Every registered loader (``export/loaders/``: ``export`` for our checkpoints, ``import`` for
MarianMTModel directories) becomes a command with its own arguments and the flags every package
takes; all of them run the same pipeline: load, write the package, check it against PyTorch,
each step said on stderr as it starts (when stderr is a terminal, or with --progress).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from tongyeok.progress import Steps, add_progress_flag, wanted

if TYPE_CHECKING:
    from export.loaders import Loader


def add_loader_command(sub: argparse._SubParsersAction, loader: Loader) -> None:
    p = sub.add_parser(
        loader.command, help=loader.help, description=loader.description, epilog=loader.epilog
    )
    if loader.out_in_repository:
        p.add_argument(
            "--out",
            help="package directory to write (replaced if present; default: NAME in the model "
            "repository 'tongyeok serve' reads: --model-repository, TONGYEOK_MODEL_REPOSITORY, "
            "./models if present, else the one in the user cache beside the shipped model)",
        )
        p.add_argument("--model-repository", help="the repository to write NAME into")
    else:
        p.add_argument(
            "--out", required=True, help="package directory to write (replaced if present)"
        )
    precisions = {"fp32": "fp32", "fp16": "fp16 (GPUs)", "int8": "int8 (CPUs)"}
    p.add_argument(
        "--precision",
        default=loader.default_precision,
        help=", ".join(
            f"{text} (default)" if name == loader.default_precision else text
            for name, text in precisions.items()
        ),
    )
    p.add_argument(
        "--name", help=f"package name (default: SOURCE-TARGET, e.g. {loader.example_name})"
    )
    p.add_argument(
        "--description",
        help="what the model is for (training data, domain), shown beside its pair on the page "
        "and in /v1/models (default: from the source: its model card, its training files)",
    )
    add_cache_option(p)
    loader.declare_arguments(p)
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the parity check against PyTorch",
    )
    add_progress_flag(p)
    p.set_defaults(run=partial(run_loader, loader))


def add_cache_option(p: argparse.ArgumentParser) -> None:
    from contract.package import CACHE_LAYOUTS

    p.add_argument(
        "--cache",
        choices=CACHE_LAYOUTS,
        help="the decoder's self-attention cache: in-place (default for fp32 and int8: one "
        "buffer per layer written in place, CPU only) or gathered (grown by a copy at every "
        "step; fp16's only layout, and what an fp32 package for CUDA needs)",
    )


# What the package step does beyond writing the graphs, by precision (the slow part of an int8
# export is the quantizer).
CONVERTS = {"fp32": "", "fp16": ", converting to fp16", "int8": ", quantizing to int8"}


def run_loader(loader: Loader, args: argparse.Namespace) -> int:
    """Load, write, verify: one status line per step on stderr as it starts, and their times at
    the end (tongyeok/progress.py); what each step finds, on stdout."""
    from contract.package import PRECISIONS, PackageError
    from export.package_cache import check_cache

    if args.precision not in PRECISIONS:  # refused before anything is loaded
        raise PackageError(f"unsupported precision {args.precision!r}: choose one of {PRECISIONS}")
    check_cache(args.precision, args.cache)
    steps = Steps(args.command, 3 if args.verify else 2, wanted(args.progress))
    with steps.step(loader.loading(args), "load"):
        from export.onnx_export import write_package  # torch: seconds to import

        source = loader.load(args)
    if args.description is not None:
        source.description = args.description
    target = args.out
    if target is None:  # a loader that writes into the model repository
        from tongyeok.commands.serve import user_repository

        target = user_repository(args.model_repository) / (args.name or source.pair_name)
    writing = f"writing the {args.precision} package: building the graphs"
    with steps.step(writing + CONVERTS[args.precision], "write"):
        out = write_package(source, target, args.precision, args.name, args.cache)
    print(loader.wrote(source, out), flush=True)
    if args.verify:
        from export.verify import verify_package

        with steps.step("verifying the package against PyTorch", "verify"):
            report = verify_package(source, out)
        print(report)
    steps.summary()
    if args.out is None:
        print(
            f"a running 'tongyeok serve' on {out.parent} serves it within seconds "
            "(or now: kill -HUP its process, or POST /v1/admin/reload)"
        )
    return 0


def add_export_hf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-hf",
        help="export a checkpoint as a Hugging Face MarianMTModel directory (for Transformers, "
        "CTranslate2)",
        description="Write the same weights as a MarianMTModel directory with MarianTokenizer "
        "files. Transformers loads it (from_pretrained) and CTranslate2 converts it "
        "(ct2-transformers-converter --model DIR --output_dir CT2_DIR). Needs the 'hf' extra.",
        epilog="example: tongyeok export-hf --out hf/en-de",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    p.add_argument("--out", required=True, help="directory to write")
    p.set_defaults(run=run_export_hf)


def run_export_hf(args: argparse.Namespace) -> int:
    from export.hf import export_hf

    print(f"wrote {export_hf(args.checkpoint, args.out)}")
    return 0


def installed_loaders() -> list[Loader]:
    """Every registered loader; none where ``export/`` is not installed (the serving image,
    which serves packages exported elsewhere)."""
    try:
        from export.loaders import loaders
    except ModuleNotFoundError as exc:
        if exc.name != "export":
            raise
        return []
    return loaders()


def register(sub: argparse._SubParsersAction) -> None:
    """A command per loader, and ``export-hf``, listed by name."""
    adders: dict[str, Callable[[argparse._SubParsersAction], None]] = {
        loader.command: partial(add_loader_command, loader=loader) for loader in installed_loaders()
    }
    adders["export-hf"] = add_export_hf
    for command in sorted(adders):
        adders[command](sub)
