"""Commands that make checkpoints: ``train`` and ``release`` (torch)."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields


def add_train(sub: argparse._SubParsersAction) -> None:
    try:  # torch-free, but absent from the image
        from model.config import Architecture
        from model.train_config import TrainConfig
    except ModuleNotFoundError:
        return  # the serving image has no model/: no training there

    p = sub.add_parser(
        "train",
        help="train a model (and its SentencePiece vocabulary) on parallel text",
        description="Train a Transformer on parallel text. Options come from --config (TOML) and "
        "are overridden by flags. Re-running with the same --out-dir resumes exactly from "
        "OUT_DIR/last.pt.",
        epilog="example: tongyeok train --config configs/en-de.toml "
        "--train-source data/train.en.gz --train-target data/train.de.gz",
    )
    p.add_argument("--config", help="TOML file with any of the options below")
    architecture = p.add_argument_group(
        "model architecture",
        "stored in the checkpoint (model/config.py); a resumed run keeps its checkpoint's",
    )
    stored = {f.name for f in fields(Architecture)}
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for f in sorted(fields(TrainConfig), key=lambda f: f.name in stored):  # as the help lists them
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = getattr(defaults, f.name)
        group = architecture if f.name in stored else p
        if kind is bool:
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default {default})",
            )
        elif f.name == "adam_betas":
            group.add_argument(flag, type=float, nargs=2, default=None, help=f"(default {default})")
        else:
            group.add_argument(flag, type=kind, default=None, help=f"(default {default!r})")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from model.train import TrainConfig, train

    config = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    config = config.updated(overrides)
    for name in ("train_source",):
        if not getattr(config, name):
            raise SystemExit(f"tongyeok train: --{name.replace('_', '-')} is required")
    result = train(config)
    print(f"done: {result.steps} steps, checkpoints in {result.out_dir}")
    return 0


def add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release",
        help="turn training checkpoints into one lean release checkpoint (averaged, fp16)",
        description="Average the weights of one or more checkpoints, drop the training state "
        "(optimizer, RNG) and write a checkpoint for use, optionally in fp16 (half the size; "
        "computation stays fp32).",
        epilog="example: tongyeok release runs/en-de/epoch*.pt --half "
        "--out model/pretrained/en-de.pt",
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoints to average (one: copied as is)")
    p.add_argument("--out", required=True, help="where to write the release checkpoint")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--half", action="store_true", help="store weights in fp16")
    kind.add_argument(
        "--int8",
        action="store_true",
        help="store matrices in int8 with a scale per row, the rest in fp16 (about a quarter "
        "of fp32's size; loaded back as fp32)",
    )
    p.add_argument(
        "--samples",
        action="store_true",
        help="also record translations of a few sample sentences in OUT.samples.json "
        "(the shipped model's tests check them)",
    )
    p.set_defaults(run=run_release)


def run_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model.checkpoint import average_checkpoints, load_checkpoint

    paths = [Path(p) for p in args.checkpoints]
    ckpt = load_checkpoint(paths[-1])
    if len(paths) > 1:
        ckpt.state_dict = average_checkpoints(paths)
        ckpt.metadata["averaged"] = [p.name for p in paths]
    ckpt.train_state = None
    ckpt.save(args.out, half=args.half, int8=args.int8)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    if args.samples:
        import json

        from model.evaluate import record_samples

        samples = Path(args.out).with_suffix(".samples.json")
        samples.write_text(
            json.dumps(record_samples(args.out), indent=2, ensure_ascii=False) + "\n"
        )
        print(f"wrote {samples}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_train(sub)
    add_release(sub)
