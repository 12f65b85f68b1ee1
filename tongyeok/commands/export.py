"""Commands that write model packages and other formats: ``export``, ``export-hf``, ``import``."""

from __future__ import annotations

import argparse


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to an ONNX model package (encoder + KV-cached decoder)",
        description="Write a model package: encoder.onnx, decoder.onnx, weights.bin (their "
        "weights, page-aligned, each tensor once), tokenizer.model, config.json and manifest.json "
        "(SHA-256 of every file). The package is what the service "
        "loads, with ONNX Runtime alone. Then check it against PyTorch on a few sentences.",
        epilog="example: tongyeok export --out models/en-de  (the shipped model, fp32)",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    p.add_argument("--out", required=True, help="package directory to write (replaced if present)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16 (GPUs) or int8 (CPU)")
    p.add_argument("--name", help="package name (default: SOURCE-TARGET, e.g. en-de)")
    add_cache_option(p)
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the parity check against PyTorch",
    )
    p.set_defaults(run=run_export)


def add_cache_option(p: argparse.ArgumentParser) -> None:
    from contract.package import CACHE_LAYOUTS

    p.add_argument(
        "--cache",
        choices=CACHE_LAYOUTS,
        help="the decoder's self-attention cache: in-place (default for fp32 and int8: one "
        "buffer per layer written in place, CPU only) or gathered (grown by a copy at every "
        "step; fp16's only layout, and what an fp32 package for CUDA needs)",
    )


def run_export(args: argparse.Namespace) -> int:
    from export.onnx_export import export_package

    out = export_package(args.checkpoint, args.out, args.precision, args.name, args.cache)
    print(f"wrote {out}")
    if args.verify:
        from export.verify import check_package

        print(check_package(args.checkpoint, out))
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


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import a Hugging Face MarianMTModel directory (OPUS-MT) as a model package",
        description="Read a local MarianMTModel directory (config.json, model.safetensors or "
        "pytorch_model.bin, source.spm, target.spm, vocab.json, optional target_vocab.json and "
        "tokenizer_config.json; nothing is downloaded), check every setting, and write a model "
        "package through the same export pipeline and PyTorch-vs-ONNX parity check as "
        "'tongyeok export'. Settings Tongyeok cannot represent are refused with their name.",
        epilog="example: tongyeok import ~/models/opus-mt-ko-en --out models/ko-en",
    )
    p.add_argument("directory", help="the MarianMTModel directory")
    p.add_argument("--out", required=True, help="package directory to write (replaced if present)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16 (GPUs) or int8 (CPU)")
    p.add_argument("--name", help="package name (default: SOURCE-TARGET, e.g. ko-en)")
    add_cache_option(p)
    p.add_argument("--source", help="source language (default: tokenizer_config.json's)")
    p.add_argument(
        "--target",
        action="append",
        help="target language (default: tokenizer_config.json's, or every >>xxx<< token of a "
        "multilingual model); repeat to keep several",
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the parity check against PyTorch",
    )
    p.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from contract.package import PRECISIONS, PackageError
    from export.marian import load_marian
    from export.onnx_export import write_package

    if args.precision not in PRECISIONS:
        raise PackageError(f"unsupported precision {args.precision!r}: choose one of {PRECISIONS}")
    source = load_marian(args.directory, args.source, args.target)
    out = write_package(source, args.out, args.precision, args.name, args.cache)
    pairs = [f"{s}->{t}" for s in source.source_langs for t in source.target_langs]
    print(f"wrote {out}: {', '.join(pairs)}")
    if args.verify:
        from export.verify import verify_package

        print(verify_package(source, out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_export(sub)
    add_export_hf(sub)
    add_import(sub)
