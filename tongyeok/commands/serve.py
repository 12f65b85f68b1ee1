"""``tongyeok serve``: the HTTP service (ONNX Runtime only, no torch) — with no model repository,
the shipped model, exported once into the user cache."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

SHIPPED_PRECISIONS = ("int8", "fp32")  # the shipped model's CPU packages; the first is the default


def settings_help() -> str:
    """Every setting as an environment variable, with its default and meaning, from ``Settings``
    itself (the one list; README's table is checked against it too)."""
    import textwrap

    from service.settings import PREFIX, Settings

    lines = [
        "settings (environment variables, or keys of the --config file in lower case; the flags "
        "above win, then the environment, then the file):"
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        text = f"{PREFIX}{name.upper()} (default {default}): {field.description}"
        lines += textwrap.wrap(
            text, 78, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False
        )
    return "\n".join(lines)


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve translations over HTTP (ONNX Runtime only, no torch)",
        description="Serve every model package in the model repository over HTTP with "
        "continuous batching, and a translation page at /. Without a model repository (the "
        "default `models` absent) the shipped English→German model is served, its package "
        "exported once into $TONGYEOK_CACHE_DIR (default ~/.cache/tongyeok; needs the [train] "
        "extra). Every flag is also an environment variable (TONGYEOK_HOST, ...), and every "
        "setting a key of the --config file; flags win, then the environment, then the file. "
        "Every log line is one JSON object on stderr.",
        epilog=settings_help() + "\n\nexample: tongyeok serve --port 8000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        help="TOML file of settings, keys as below in lower case, e.g. max_text_chars = 2000 "
        "(TONGYEOK_CONFIG; a key that names no setting is refused)",
    )
    p.add_argument("--host", help="address to listen on (TONGYEOK_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (TONGYEOK_PORT, default 8000)")
    p.add_argument(
        "--workers",
        type=int,
        help="HTTP worker processes in front of one engine process (TONGYEOK_WORKERS, default "
        "1: one process does everything)",
    )
    p.add_argument(
        "--model-repository",
        help="directory of model packages (TONGYEOK_MODEL_REPOSITORY, default models; when "
        "neither is given and models is absent: the shipped model)",
    )
    p.add_argument(
        "--shipped-precision",
        choices=SHIPPED_PRECISIONS,
        help="precision the shipped model is exported in when no repository is given "
        "(TONGYEOK_SHIPPED_PRECISION, default int8: on a CPU 1.2-2.5x faster than fp32 for "
        "-0.04 to +0.06 BLEU on the Multi30k test sets, README 'Quality')",
    )
    p.set_defaults(run=run_serve)


def export_shipped(precision: str, cache: str | None) -> Path:
    """The shipped model's package, exported into the cache. Runs in a child process: torch
    stays there, never in the server; its log lines are JSON too."""
    from export.onnx_export import ensure_package
    from service.logs import configure_logging

    configure_logging()
    return ensure_package(None, precision, cache)


def shipped_repository(precision: str = SHIPPED_PRECISIONS[0], cache: str | None = None) -> Path:
    """A repository in the user cache holding the shipped model's package (exported on first
    use, as ``tongyeok translate`` does), linked so that only that package is in it. ``cache``:
    the cache layout the device needs (its profile's; None: the precision's default)."""
    import importlib.util
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from contract.package import PackageError

    missing = [name for name in ("export", "model") if not importlib.util.find_spec(name)]
    if not missing:
        from export.package_cache import cache_dir, cached_package

        package = cached_package(None, precision, cache)
        if package is None and not importlib.util.find_spec("torch"):
            missing = ["torch"]
    if missing:
        raise PackageError(
            f"no model repository (models is absent) and the shipped model cannot be exported "
            f"without {missing[0]}: install the [train] extra, or serve packages built elsewhere "
            "with --model-repository"
        )
    logging.getLogger("tongyeok").info(
        "no model repository; serving the shipped model"
        + (" (exporting it into the cache once)" if package is None else "")
    )
    if package is None:
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: torch stays there
        with ProcessPoolExecutor(1, mp_context=spawn) as child:
            package = child.submit(export_shipped, precision, cache).result()
    root = cache_dir() / CACHE_REPOSITORY
    root.mkdir(parents=True, exist_ok=True)
    link = root / package.name
    for stale in root.iterdir():
        if stale.is_symlink() and stale != link:
            stale.unlink()
    if not link.exists():
        link.symlink_to(package.resolve(), target_is_directory=True)
    return root


CACHE_REPOSITORY = "repository"  # under the user cache: the shipped model's link, pulled packages


def user_repository(explicit: str | None = None) -> Path:
    """The repository ``serve`` reads and ``pull`` writes into: ``explicit`` (a flag), else
    TONGYEOK_MODEL_REPOSITORY (or the TONGYEOK_CONFIG file's), else ./models when present, else
    the user cache's repository, where the shipped model's package is linked when ``serve``
    starts."""
    from service.settings import load_settings

    if explicit:
        return Path(explicit)
    settings = load_settings()
    if "model_repository" in settings.model_fields_set or settings.model_repository.exists():
        return settings.model_repository
    from export.package_cache import cache_dir

    return cache_dir() / CACHE_REPOSITORY


def run_serve(args: argparse.Namespace) -> int:
    from contract.package import PackageError
    from service.api.server import check_port, serve
    from service.logs import configure_logging
    from service.runtime.providers import resolve
    from service.scheduling.repository import check_repository
    from service.settings import load_settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "model_repository": args.model_repository,
        }.items()
        if v is not None
    }
    settings = load_settings(args.config, **overrides)
    # before minutes of export and loading, not after; port 0: a free one, chosen now
    settings = settings.model_copy(update={"port": check_port(settings.host, settings.port)})
    configure_logging()  # from here every line is JSON (service/logs.py)
    # named by a flag, the environment or the file: never replaced by the shipped model
    explicit = "model_repository" in settings.model_fields_set
    if not explicit and not settings.model_repository.exists():
        precision = args.shipped_precision or os.environ.get(
            "TONGYEOK_SHIPPED_PRECISION", SHIPPED_PRECISIONS[0]
        )
        if precision not in SHIPPED_PRECISIONS:
            raise PackageError(f"TONGYEOK_SHIPPED_PRECISION: int8 or fp32, not {precision!r}")
        repository = shipped_repository(precision, resolve(settings.device).cache_layout)
        settings = settings.model_copy(update={"model_repository": repository})
    check_repository(settings.model_repository)  # PackageError: one line, exit status 1
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    announce = f"Tongyeok: translation page {base}/ · API docs {base}/docs"
    if settings.workers > 1:
        from service.api.supervisor import supervise  # never loaded by one process

        supervise(settings, announce)
    else:
        serve(settings, announce)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_serve(sub)
