"""One decoding engine per process, timed on one configuration: the child side of ``bench engine``.

``python -m bench.contenders SPEC.json`` loads exactly one engine (nothing else: no other engine's
thread pool exists in the process), decodes the same batches in the same order as every other
engine, checks every output has the forced length, and prints one JSON line: seconds per timed
run, tokens, this process's CPU time, the CPU time other processes used meanwhile (so a contended
run is visible), the peak resident memory, and digests of what the engine was fed and produced.

Every engine gets the batches in file order, ``batch`` sentences each: none sorts across the set.
The sources are token ids of the reference package (``fp32/`` of the model's work directory,
tokenizer loaded with ``contract.tokenizers.load_tokenizer``: ours or Marian's); an engine with
a vocabulary of its own gets the same pieces in its ids (CTranslate2 takes pieces, Transformers
the ids of the directory's ``vocab.json``, permuted from ours for our checkpoints). Each runner
records its inputs as the engine received them, as pieces with the EOS it appended, so that the
parent can check every engine was fed identical sources; its best outputs are recorded as
pieces too. Special ids come from each engine's own configuration: Tongyeok's from its package,
Transformers' from the directory's config (EOS, pad, decoder start = pad for Marian), and
CTranslate2's converter starts Marian decoders from a zero embedding, as pad's is.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REFERENCE = "fp32"  # the package of the work directory whose ids every engine's inputs are


@dataclass
class Decoded:
    """What one run fed an engine and got back, as pieces (comparable across vocabularies)."""

    fed: list[list[str]] = field(default_factory=list)  # each source as given, EOS included
    outputs: list[list[str]] = field(default_factory=list)  # best hypothesis, EOS excluded


# (sources, batch, beam, tokens) -> what the engine was fed and produced, in input order
Runner = Callable[[Sequence[Sequence[int]], int, int, int], Decoded]


@dataclass(frozen=True)
class Vocabulary:
    """The reference package's id -> piece maps and EOS: the common currency of the inputs."""

    source: Callable[[int], str]
    target: Callable[[int], str]
    eos_id: int

    def pieces(self, source: Sequence[int]) -> list[str]:
        """``source`` as pieces, with EOS appended as every engine must append it."""
        return [self.source(int(i)) for i in source] + [self.source(self.eos_id)]


def reference_tokenizer(work: Path):  # -> Tokenizer | MarianTokenizer, and the package config
    """The tokenizer of the model in ``work`` as its reference package names it (ours or
    Marian's), with that package's config."""
    from contract.package import load_package_config
    from contract.tokenizers import load_tokenizer

    config = load_package_config(work / REFERENCE, verify=False)
    return load_tokenizer(config), config


def reference_vocabulary(work: Path) -> Vocabulary:
    from contract.marian import MarianTokenizer

    tokenizer, config = reference_tokenizer(work)
    if isinstance(tokenizer, MarianTokenizer):
        inverse = {i: piece for piece, i in tokenizer.encoder.items()}
        return Vocabulary(inverse.__getitem__, tokenizer.piece, config.eos_id)
    processor = tokenizer.processor
    return Vocabulary(processor.IdToPiece, processor.IdToPiece, config.eos_id)


def digest(rows: list[list[str]]) -> str:
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def tongyeok(package: Path, threads: int, vocab: Vocabulary, device: str = "cpu") -> Runner:
    from contract.options import SearchOptions
    from service.decoding.engine import Engine
    from service.runtime.providers import resolve
    from service.runtime.sessions import PackageRuntime, RuntimeOptions

    profile = resolve(device)
    runtime = PackageRuntime(package, RuntimeOptions(profile.providers, intra_op_threads=threads))
    if runtime.profile is not profile:
        raise SystemExit(
            f"tongyeok: no {profile.label} provider ({runtime.decoder.get_providers()})"
        )
    engine = Engine(runtime)
    eos = vocab.source(engine.config.eos_id)  # what Engine.add appends, from this package

    def run(sources, batch, beam, tokens):
        options = SearchOptions(
            beam_size=beam, min_length=tokens, max_length_a=0, max_length_b=tokens
        )
        done = Decoded()
        for part in chunks(sources, batch):  # one batch at a time, in file order
            hyps = engine.run(part, options, batch, sort=False)
            done.fed += [[vocab.source(i) for i in s] + [eos] for s in part]
            done.outputs += [[vocab.target(t) for t in h[0].tokens] for h in hyps]
        return done

    return run


def ct2_source_pieces(model_dir: Path) -> set[str]:
    """CTranslate2's own source vocabulary (what it maps pieces to ids with)."""
    for name in ("shared_vocabulary", "source_vocabulary"):
        if (model_dir / f"{name}.json").is_file():
            return set(json.loads((model_dir / f"{name}.json").read_text(encoding="utf-8")))
        if (model_dir / f"{name}.txt").is_file():
            return set((model_dir / f"{name}.txt").read_text(encoding="utf-8").splitlines())
    raise FileNotFoundError(f"{model_dir}: no CTranslate2 vocabulary")


def ctranslate2_engine(work: Path, compute_type: str, threads: int, vocab: Vocabulary) -> Runner:
    import ctranslate2

    translator = ctranslate2.Translator(
        str(work / "ct2"),
        device="cpu",
        compute_type=compute_type,
        inter_threads=1,
        intra_threads=threads,
    )
    known = ct2_source_pieces(work / "ct2")

    def run(sources, batch, beam, tokens):
        done = Decoded()
        for part in chunks(sources, batch):
            pieces = [vocab.pieces(s) for s in part]
            results = translator.translate_batch(
                pieces,
                beam_size=beam,
                min_decoding_length=tokens,
                max_decoding_length=tokens,
                max_batch_size=batch,
            )
            done.fed += [[p if p in known else "<unk>" for p in row] for row in pieces]
            done.outputs += [list(r.hypotheses[0]) for r in results]
        return done

    return run


def pytorch(work: Path, weights: str, threads: int, vocab: Vocabulary) -> Runner:
    import torch

    from contract.options import SearchOptions
    from model.translate import translate_ids

    torch.set_num_threads(threads)
    if weights == "marian":  # imported as ``tongyeok import`` imports it: our Transformer
        from export.marian import load_marian

        model = load_marian(work / "hf").model
    else:
        from model.checkpoint import load_checkpoint

        model = load_checkpoint(work / "model.pt").build_model()
    eos = vocab.source(model.cfg.eos_id)  # what translate_ids appends

    def run(sources, batch, beam, tokens):
        options = SearchOptions(
            beam_size=beam, min_length=tokens, max_length_a=0, max_length_b=tokens
        )
        hyps = translate_ids(model, sources, options, batch, sort=False)
        return Decoded(
            [[vocab.source(i) for i in s] + [eos] for s in sources],
            [[vocab.target(t) for t in h[0].tokens] for h in hyps],
        )

    return run


def transformers_generate(
    hf_dir: Path, threads: int, vocab: Vocabulary, device: str = "cpu", half: bool = False
) -> Runner:
    """MarianMTModel.generate with its KV cache, the same pieces in the directory's ids; pad,
    EOS and the decoder start (pad) from its config; no forced EOS at the length limit, so that
    all ``tokens`` outputs are words as in every other engine. ``half``: fp16 weights and
    activations (on a GPU), as a Transformers user runs it there."""
    import torch
    from transformers import MarianMTModel

    torch.set_num_threads(threads)
    model = MarianMTModel.from_pretrained(hf_dir).eval().to(device)
    if half:
        model = model.half()
    to_id = json.loads((hf_dir / "vocab.json").read_text(encoding="utf-8"))
    target_file = hf_dir / "target_vocab.json"
    target = json.loads(target_file.read_text(encoding="utf-8")) if target_file.is_file() else to_id
    source_piece = {i: p for p, i in to_id.items()}
    target_piece = {i: p for p, i in target.items()}
    pad, eos = model.config.pad_token_id, model.config.eos_token_id
    start = model.generation_config.decoder_start_token_id
    unk = to_id["<unk>"]

    def run(sources, batch, beam, tokens):
        done = Decoded()
        for part in chunks(sources, batch):
            rows = [[to_id.get(p, unk) for p in vocab.pieces(s)] for s in part]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
            mask = ids.ne(pad)
            with torch.inference_mode():
                ids, mask = ids.to(device), mask.to(device)
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    num_beams=beam,
                    do_sample=False,
                    min_new_tokens=tokens,
                    max_new_tokens=tokens,
                    forced_eos_token_id=None,
                    use_cache=True,
                    early_stopping=False,
                    length_penalty=1.0,
                )
            if not bool(out[:, 0].eq(start).all()):
                raise SystemExit(f"transformers: decoder did not start from {start}")
            out = out.cpu()
            for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
                done.fed.append([source_piece[i] for i, k in zip(row, keep, strict=True) if k])
            for row in out[:, 1:].tolist():
                row = row[: row.index(eos)] if eos in row else row
                done.outputs.append([target_piece[i] for i in row])
        return done

    return run


def build(spec: dict) -> Runner:
    work, name, threads = Path(spec["workdir"]), spec["engine"], spec["threads"]
    device = spec.get("device", "cpu")
    vocab = reference_vocabulary(work)
    if name.startswith("tongyeok "):
        return tongyeok(work / name.split()[1], threads, vocab, device)
    if name.startswith("ct2 "):
        return ctranslate2_engine(work, name.split()[1], threads, vocab)
    if name == "pytorch":
        return pytorch(work, spec["weights"], threads, vocab)
    if name in ("transformers", "transformers fp16"):
        return transformers_generate(work / "hf", threads, vocab, device, name.endswith("fp16"))
    raise ValueError(f"unknown engine {name!r}")


def busy_cpu_seconds() -> float:
    """CPU seconds spent by every process on the machine (all cores), from /proc/stat."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def measure(spec: dict) -> dict:
    sources = json.loads(Path(spec["sources"]).read_text())
    batch, beam, tokens = spec["batch"], spec["beam"], spec["tokens"]
    run = build(spec)
    run(sources[: min(batch, 4)], batch, beam, tokens)  # warm-up: first-call allocations
    me = psutil.Process()
    runs = []
    for _ in range(spec["repeats"]):
        own0, busy0 = sum(me.cpu_times()[:2]), busy_cpu_seconds()
        start = time.perf_counter()
        done = run(sources, batch, beam, tokens)
        seconds = time.perf_counter() - start
        own = sum(me.cpu_times()[:2]) - own0
        other = max(0.0, busy_cpu_seconds() - busy0 - own)
        lengths = [len(o) for o in done.outputs]
        wrong = [n for n in lengths if n != tokens]
        if len(lengths) != len(sources) or wrong:
            raise SystemExit(
                f"{spec['engine']}: {len(wrong)} outputs not of the forced length {tokens} "
                f"(e.g. {wrong[:3]}), {len(lengths)}/{len(sources)} sentences"
            )
        runs.append({"seconds": seconds, "cpu": own, "other_cpu": other})
    return {
        "tokens": tokens * len(sources),
        "runs": runs,
        "peak_mb": peak_resident_mb(),
        "pid": os.getpid(),
        "fed": digest(done.fed),
        "outputs": digest(done.outputs),
    }


def peak_resident_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over from the parent across fork and exec, so every child would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(Path(sys.argv[1]).read_text()))))
