"""``tongyeok serve``: the HTTP service (ONNX Runtime only, no torch)."""

from __future__ import annotations

import argparse


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve translations over HTTP (ONNX Runtime only, no torch)",
        description="Serve every model package in the model repository over HTTP with "
        "continuous batching. Every flag is also an environment variable (TONGYEOK_HOST, ...); "
        "flags win.",
        epilog="example: tongyeok export --out models/en-de && tongyeok serve --port 8000",
    )
    p.add_argument("--host", help="address to listen on (TONGYEOK_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (TONGYEOK_PORT, default 8000)")
    p.add_argument(
        "--model-repository",
        help="directory of model packages (TONGYEOK_MODEL_REPOSITORY, default models)",
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from service.server import serve
    from service.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "model_repository": args.model_repository,
        }.items()
        if v
    }
    serve(Settings(**overrides))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_serve(sub)
