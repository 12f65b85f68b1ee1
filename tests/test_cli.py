"""The ``tongyeok`` command as a user runs it: a real subprocess of the installed entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import copy_pairs, write_tsv
from tongyeok.cli import main

TONGYEOK = str(Path(sys.executable).parent / "tongyeok")
CACHE = tempfile.mkdtemp(prefix="tongyeok-cache-")  # exported packages, private to this session


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TONGYEOK_CACHE_DIR": CACHE}
    return subprocess.run(
        [TONGYEOK, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("train", "evaluate", "translate", "release"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "translate", "release"])
def test_each_subcommand_has_useful_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert "example:" in result.stdout
    if command == "train":
        assert "--label-smoothing" in result.stdout and "--warmup-steps" in result.stdout


def test_train_help_lists_each_architecture_option_with_the_model_default() -> None:
    """The flags come from the one declaration the checkpoint's ModelConfig inherits too."""
    from model.config import Architecture

    result = run("train", "--help")
    assert result.returncode == 0
    _, group = result.stdout.split("\nmodel architecture:\n")
    for f in fields(Architecture):
        flag = "--" + f.name.replace("_", "-")
        assert re.search(rf"{flag} {f.name.upper()}\s+\(default {f.default!r}\)", group), flag


def test_translate_arguments_and_stdin_keep_order(toy_checkpoint: Path) -> None:
    sentences = [s for s, _ in copy_pairs(5, seed=7)]
    args = run("translate", "--model", str(toy_checkpoint), "--beam-size", "1", *sentences)
    assert args.returncode == 0, args.stderr
    assert args.stdout.splitlines() == sentences
    lines = [sentences[0], "", sentences[1]]
    piped = run("translate", "--model", str(toy_checkpoint), stdin="\n".join(lines) + "\n")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == lines  # empty line in, empty line out, same order


def test_onnx_engine_and_torch_reference_agree(toy_checkpoint: Path, tmp_path: Path) -> None:
    sentences = [s for s, _ in copy_pairs(8, seed=9)]
    outputs = {}
    for engine in ("onnx", "torch"):
        result = run("translate", "--model", str(toy_checkpoint), "--engine", engine, *sentences)
        assert result.returncode == 0, result.stderr
        outputs[engine] = result.stdout
    assert outputs["onnx"] == outputs["torch"]
    assert any(Path(CACHE, "packages").iterdir())  # exported once into the cache
    package = next(Path(CACHE, "packages").iterdir())
    direct = run("translate", "--package", str(package), *sentences)
    assert direct.stdout == outputs["onnx"]


def test_evaluate_prints_scores_and_signatures(toy_checkpoint: Path, tmp_path: Path) -> None:
    pairs = copy_pairs(30, seed=8)
    src = tmp_path / "src.txt"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    out = tmp_path / "hyp.txt"
    result = run(
        "evaluate", str(src), str(src), "--model", str(toy_checkpoint), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "BLEU = 100.00" in result.stdout
    assert "tok:13a" in result.stdout and "case:mixed" in result.stdout
    assert "chrF = 100.00" in result.stdout
    assert out.read_text().splitlines() == [s for s, _ in pairs]


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = run("translate", "--model", str(tmp_path / "none.pt"), "hello")
    assert missing.returncode == 1
    assert (
        missing.stderr.strip()
        == f"tongyeok translate: error: checkpoint {tmp_path / 'none.pt'} does not exist"
    )
    src = write_tsv(tmp_path / "a.txt", [("x", "y")])
    ref = tmp_path / "b.txt"
    ref.write_text("one\ntwo\n")
    mismatch = run("evaluate", str(src), str(ref))
    assert mismatch.returncode == 1
    assert "line counts differ" in mismatch.stderr
    no_data = run("train")
    assert no_data.returncode != 0 and "--train-source is required" in no_data.stderr


@pytest.mark.parametrize("value", ["fp64", "", "INT8", "int8\u202e", "x" * 10_000])
def test_a_bad_shipped_precision_is_refused_before_any_export(tmp_path: Path, value: str) -> None:
    env = {
        **os.environ,
        "TONGYEOK_CACHE_DIR": str(tmp_path / "cache"),
        "TONGYEOK_SHIPPED_PRECISION": value,
    }
    done = subprocess.run(
        [TONGYEOK, "serve", "--port", "0"],
        cwd=tmp_path,  # no models/ here: the shipped model would be exported
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert "TONGYEOK_SHIPPED_PRECISION: int8 or fp32" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache" / "packages").exists()  # refused before exporting anything


def test_release_averages_and_halves(toy_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "release.pt"
    result = run("release", str(toy_checkpoint), str(toy_checkpoint), "--half", "--out", str(out))
    assert result.returncode == 0, result.stderr
    translated = run("translate", "--model", str(out), "red dog runs")
    assert translated.stdout.strip() == "red dog runs"


BLOCK_TRAINING = """
import sys
TRAINING_ONLY = {"torch", "onnx", "sacrebleu", "tqdm", "transformers", "ctranslate2"}
NOT_COPIED = {"model", "export", "bench"}  # the Dockerfile copies contract, service, tongyeok
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in TRAINING_ONLY | NOT_COPIED:
            raise ModuleNotFoundError(f"no {top} in the serving image", name=top)
sys.meta_path.insert(0, NotInstalled())
"""


def without_training_packages(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TRAINING + code, *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_serving_needs_no_training_packages() -> None:
    """The serving image installs only the runtime dependencies: the CLI (every sub-command's
    flags included) and the server must import with torch, onnx, sacrebleu and tqdm absent."""
    code = """
import service.api.app, service.scheduling.repository, service.api.server
from tongyeok.cli import build_parser
args = build_parser().parse_args(["serve", "--port", "8123"])
print(args.port)
"""
    result = without_training_packages(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "8123"


def test_translate_a_package_without_training_packages(toy_repository: Path) -> None:
    """`tongyeok translate --package` is what the torch-free image runs."""
    code = "from tongyeok.cli import main; raise SystemExit(main(sys.argv[1:]))"
    sentences = [s for s, _ in copy_pairs(3, seed=11)]
    package = str(toy_repository / "en-de")
    result = without_training_packages(code, "translate", "--package", package, *sentences)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == sentences


NO_TORCH = (  # the CLI, run where importing torch fails
    "import sys\n"
    "class NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] == 'torch':\n"
    "            raise ModuleNotFoundError('torch imported', name='torch')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
    "from tongyeok.cli import main; raise SystemExit(main(sys.argv[1:]))"
)


def test_translate_from_a_warm_cache_never_imports_torch(
    toy_checkpoint: Path, tmp_path: Path
) -> None:
    """Without --package, the first call exports the checkpoint into the cache; later ones find
    it there without the exporter, so they run with torch absent (3.3 s against 0.6 s a call
    when every call imported it; issue 34)."""
    env = {**os.environ, "TONGYEOK_CACHE_DIR": str(tmp_path / "cache")}
    sentences = [s for s, _ in copy_pairs(2, seed=5)]
    args = ["translate", "--model", str(toy_checkpoint), *sentences]
    first = subprocess.run(
        [sys.executable, "-m", "tongyeok.cli", *args], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and len(again.stdout.splitlines()) == 2


def test_export_writes_the_cache_layout_asked_for_and_refuses_one_it_cannot_build(
    toy_checkpoint: Path, tmp_path: Path
) -> None:
    """``--cache gathered`` (what an fp32 package for a GPU needs) gives a decoder that gathers
    its cache by ``cache_index``; the default writes it in place; fp16 has no in-place graphs."""
    import json

    for cache, gathers in (("gathered", True), (None, False)):
        out = tmp_path / str(cache)
        flags = ["--cache", cache] if cache else []
        done = run("export", str(toy_checkpoint), "--out", str(out), "--no-verify", *flags)
        assert done.returncode == 0, done.stderr
        inputs = json.loads((out / "config.json").read_text())["graphs"]["decoder"]["inputs"]
        assert ("cache_index" in [t["name"] for t in inputs]) == gathers
    done = run(
        "export", str(toy_checkpoint), "--out", str(tmp_path / "x"), "--precision", "fp16",
        "--cache", "in-place",
    )  # fmt: skip
    assert done.returncode == 1
    assert "in-place cache needs the fused graphs, which fp16 lacks" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_serve_help_lists_every_setting_from_the_settings_class(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``serve --help`` showed 4 of ~25 settings (issue 34); now each, from ``Settings``."""
    from service.settings import Settings

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # unwrapped
    for name, field in Settings.model_fields.items():
        assert f"TONGYEOK_{name.upper()} (default " in shown, name
        assert " ".join(str(field.description).split()) in shown, name


def test_translate_files_with_a_progress_bar_on_stderr_and_only_translations_on_stdout(
    toy_checkpoint: Path, tmp_path: Path
) -> None:
    """--input/--output ('-': stdin/stdout); the bar (forced with --progress, as stderr is no
    terminal here) counts lines on stderr and never reaches the translations."""
    sentences = [s for s, _ in copy_pairs(150, seed=21)]
    sentences[3] = ""  # empty line in, empty line out
    source = tmp_path / "in.txt"
    source.write_text("".join(s + "\n" for s in sentences))
    model = ["--model", str(toy_checkpoint), "--batch-size", "16"]  # 64 lines a chunk: 3 chunks
    to_file = run("translate", *model, "--input", str(source), "--output", str(tmp_path / "o"))
    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == "" and to_file.stderr == ""  # no terminal, not asked: no bar
    translated = (tmp_path / "o").read_text().splitlines()
    assert len(translated) == 150 and translated[3] == ""
    copied = sum(t == s for t, s in zip(translated, sentences, strict=True))
    assert copied > 140  # the toy model copies: each line in its place
    shown = run("translate", *model, "--input", str(source), "--progress")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == translated  # the translations, nothing else
    assert re.search(r"translate: +43%.*\b64/150 \[", shown.stderr), shown.stderr
    assert re.search(r"translate: 100%.*\b150/150 \[.*line/s", shown.stderr), shown.stderr
    piped = run("translate", *model, "--input", "-", "--output", "-", stdin=source.read_text())
    assert piped.stdout == shown.stdout
    both = run("translate", *model, "--input", str(source), "a sentence")
    assert both.returncode == 1
    assert (
        both.stderr
        == "tongyeok translate: error: give sentences as arguments or --input, not both\n"
    )
    missing = run("translate", *model, "--input", str(tmp_path / "none.txt"))
    assert (
        missing.returncode == 1 and "--input" in missing.stderr and "no such file" in missing.stderr
    )


def test_evaluate_uses_the_onnx_engine_by_default_and_never_imports_torch(
    toy_checkpoint: Path, tmp_path: Path
) -> None:
    """The PyTorch path was the default and 9x slower (issue 34); now it is --engine torch."""
    import json

    pairs = copy_pairs(20, seed=13)
    src = tmp_path / "src.txt"
    src.write_text("".join(s + "\n" for s, _ in pairs))
    env = {**os.environ, "TONGYEOK_CACHE_DIR": str(tmp_path / "cache")}
    args = ["evaluate", str(src), str(src), "--model", str(toy_checkpoint), "--json"]

    def evaluate(code: str, *extra: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", code, *args, *extra], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # stdout: the report alone

    cli = "import sys; from tongyeok.cli import main; raise SystemExit(main(sys.argv[1:]))"
    first = evaluate(cli)  # exports the checkpoint into the cache (with torch), once
    assert first["engine"] == "onnx int8" and round(first["bleu"], 2) == 100.0
    again = evaluate(NO_TORCH, "--progress")
    assert again["engine"] == "onnx int8" and round(again["bleu"], 2) == 100.0
    assert evaluate(cli, "--engine", "torch")["engine"] == "torch"


def test_export_says_each_step_on_stderr_when_asked(toy_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    args = ("export", str(toy_checkpoint), "--out", str(out), "--precision", "int8")
    shown = run(*args, "--progress")
    assert shown.returncode == 0, shown.stderr
    steps = [line for line in shown.stderr.splitlines() if line.startswith("tongyeok export")]
    assert steps[0] == f"tongyeok export [1/3] loading {toy_checkpoint} ..."
    assert steps[1] == (
        "tongyeok export [2/3] writing the int8 package: building the graphs, quantizing to "
        "int8 ..."
    )
    assert steps[2] == "tongyeok export [3/3] verifying the package against PyTorch ..."
    assert re.fullmatch(
        r"tongyeok export: done in [\d.]+ s \(load [\d.]+ s, write [\d.]+ s, verify [\d.]+ s\)",
        steps[3],
    )
    assert shown.stdout.startswith(f"wrote {out}\nint8: greedy translations identical")
    quiet = run(*args, "--no-verify")  # stderr is no terminal: no steps
    assert quiet.returncode == 0 and quiet.stdout == f"wrote {out}\n"
    assert "[1/" not in quiet.stderr


def test_serve_refuses_a_settings_file_key_that_names_no_setting(tmp_path: Path) -> None:
    config = tmp_path / "tongyeok.toml"
    config.write_text("max_text_char = 100\n")
    done = run("serve", "--config", str(config), "--port", "0")
    assert done.returncode == 1
    assert done.stderr == (
        f"tongyeok serve: error: settings file {config}: 'max_text_char' is not a setting; "
        "did you mean max_text_chars?\n"
    )


def test_a_zero_flag_is_a_value_not_a_missing_flag(tmp_path: Path) -> None:
    """``--workers 0`` was dropped like an absent flag (one process, silently); now the setting's
    bound refuses it in one line. (``--port 0`` likewise means any free port now, not 8000.)"""
    done = run("serve", "--workers", "0", "--model-repository", str(tmp_path))
    assert done.returncode != 0
    assert "workers (TONGYEOK_WORKERS): Input should be greater than or equal to 1" in done.stderr
    assert "Traceback" not in done.stderr
