"""Shared fixtures: small real data and one tiny real model, trained once per test session."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORDS = [
    "red",
    "blue",
    "green",
    "small",
    "big",
    "dog",
    "cat",
    "bird",
    "man",
    "woman",
    "runs",
    "jumps",
    "sits",
    "in",
    "on",
    "the",
    "a",
    "park",
]


def copy_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """A toy task: the target is the source. Sentences of 2-6 words from a closed vocabulary."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
        pairs.append((sentence, sentence))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def toy_config(tmp: Path, **overrides: object):  # -> TrainConfig (imported lazily: needs torch)
    from model.train import TrainConfig

    tmp.mkdir(parents=True, exist_ok=True)
    train = write_tsv(tmp / "train.tsv", copy_pairs(3000, seed=1))
    valid = write_tsv(tmp / "valid.tsv", copy_pairs(50, seed=2))
    base = dict(
        train_source=str(train),
        valid_source=str(valid),
        out_dir=str(tmp / "run"),
        vocab_size=300,
        d_model=64,
        n_heads=4,
        d_ff=128,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
        max_positions=64,
        max_tokens=1024,
        lr=2e-3,
        warmup_steps=100,
        label_smoothing=0.0,
        epochs=100,
        max_steps=800,
        save_every=100,
        valid_bleu=False,
        average_last=2,
        threads=1,  # tiny matrices: a second thread only adds contention
        progress=False,
    )
    base.update(overrides)
    return TrainConfig().updated(base)


@pytest.fixture(scope="session", autouse=True)
def own_data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A server or CLI started without ``TONGYEOK_DATA_DIR`` keeps its SQLite files in the user's
    data directory: for tests (and their subprocesses) a temporary one, never the user's (runs
    left keys.sqlite3 and documents.sqlite3 in ~/.local/share/tongyeok)."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Transformer trained on the copy task through the real training loop."""
    from model.train import train

    tmp = tmp_path_factory.mktemp("toy")
    result = train(toy_config(tmp), log=lambda _: None)
    return result.out_dir / "last.pt"


@pytest.fixture(scope="session")
def toy_repository(toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the toy model's package (en-de)."""
    from export.onnx_export import export_package

    repo = tmp_path_factory.mktemp("repository")
    export_package(toy_checkpoint, repo / "en-de")
    return repo


@pytest.fixture(scope="session")
def shipped_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the shipped model's package as served by default (int8),
    exported once for every test that needs real translations."""
    from export.onnx_export import export_package

    repository = tmp_path_factory.mktemp("shipped-repository")
    export_package(None, repository / "en-de", "int8")
    return repository


@pytest.fixture(scope="session")
def multi30k() -> Path:
    """The Multi30k data beside the repository (../shared/data/multi30k) or $TONGYEOK_DATA."""
    path = Path(os.environ.get("TONGYEOK_DATA", REPO.parent / "shared" / "data" / "multi30k"))
    if not (path / "test_2016_flickr.en.gz").exists():
        if os.environ.get("CI"):  # CI has shared/ beside the clone: missing data is a failure
            pytest.fail(f"Multi30k not found at {path} in CI")
        pytest.skip(f"Multi30k not found at {path} (set TONGYEOK_DATA)")
    return path


@pytest.fixture(scope="session")
def marian_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random-weight MarianMTModel directories shaped like OPUS-MT ones (bench/marian_dirs.py)."""
    from bench.marian_dirs import EN_DE_GELU, EN_MUL, KO_EN, build_marian_dir

    root = tmp_path_factory.mktemp("marian")
    return {v.name: build_marian_dir(v, root / v.name) for v in (KO_EN, EN_MUL, EN_DE_GELU)}


@pytest.fixture(scope="session")
def marian_packages(
    marian_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Packages imported with ``tongyeok import``: ko-en, and en-mul kept to targets ko and ja."""
    from tongyeok.cli import main

    root = tmp_path_factory.mktemp("imported")
    assert main(["import", str(marian_dirs["ko-en"]), "--out", str(root / "ko-en")]) == 0
    out = root / "en-ko+ja"
    argv = ["import", str(marian_dirs["en-mul"]), "--out", str(out), "--target", "ko"]
    assert main([*argv, "--target", "ja"]) == 0
    return {"ko-en": root / "ko-en", "en-mul": out}
