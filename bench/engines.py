"""One decoding engine per process, timed on one configuration: the child side of ``bench engine``.

``python -m bench.engines SPEC.json`` loads exactly one engine (nothing else: no other engine's
thread pool exists in the process), decodes the same batches in the same order as every other
engine, checks every output has the forced length, and prints one JSON line: seconds per timed
run, tokens, this process's CPU time, the CPU time other processes used meanwhile (so a contended
run is visible), and the peak resident memory.

Every engine gets the batches in file order, ``batch`` sentences each: none sorts across the set.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

# (sources, batch, beam, tokens) -> generated length of every sentence's best hypothesis
Runner = Callable[[Sequence[Sequence[int]], int, int, int], list[int]]


def chunks(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def tongyeok(package: Path, threads: int) -> Runner:
    from contract.options import SearchOptions
    from service.engine import Engine
    from service.runtime import PackageRuntime, RuntimeOptions

    engine = Engine(PackageRuntime(package, RuntimeOptions(intra_op_threads=threads)))

    def run(sources, batch, beam, tokens):
        options = SearchOptions(beam, min_length=tokens, max_length_a=0, max_length_b=tokens)
        lengths = []
        for part in chunks(sources, batch):  # one batch at a time, in file order
            lengths += [len(h[0].tokens) for h in engine.run(part, options, batch, sort=False)]
        return lengths

    return run


def ctranslate2_engine(model_dir: Path, compute_type: str, threads: int, eos: str) -> Runner:
    import ctranslate2

    from contract.tokenizer import Tokenizer

    translator = ctranslate2.Translator(
        str(model_dir / "ct2"),
        device="cpu",
        compute_type=compute_type,
        inter_threads=1,
        intra_threads=threads,
    )
    processor = Tokenizer.load(model_dir / "tokenizer.model").processor

    def run(sources, batch, beam, tokens):
        lengths = []
        for part in chunks(sources, batch):
            pieces = [[processor.IdToPiece(i) for i in s] + [eos] for s in part]
            results = translator.translate_batch(
                pieces,
                beam_size=beam,
                min_decoding_length=tokens,
                max_decoding_length=tokens,
                max_batch_size=batch,
            )
            lengths += [len(r.hypotheses[0]) for r in results]
        return lengths

    return run


def pytorch(checkpoint: Path, threads: int) -> Runner:
    import torch

    from contract.options import SearchOptions
    from model.checkpoint import load_checkpoint
    from model.translate import translate_ids

    torch.set_num_threads(threads)
    model = load_checkpoint(checkpoint).build_model()

    def run(sources, batch, beam, tokens):
        options = SearchOptions(beam, min_length=tokens, max_length_a=0, max_length_b=tokens)
        hyps = translate_ids(model, sources, options, batch, sort=False)
        return [len(h[0].tokens) for h in hyps]

    return run


def transformers_generate(hf_dir: Path, threads: int, pad_id: int, eos_id: int) -> Runner:
    """MarianMTModel.generate with its KV cache, ids given directly (same as every engine)."""
    import torch
    from transformers import MarianMTModel

    torch.set_num_threads(threads)
    model = MarianMTModel.from_pretrained(hf_dir).eval()

    def run(sources, batch, beam, tokens):
        lengths = []
        for part in chunks(sources, batch):
            rows = [list(s) + [eos_id] for s in part]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=ids.ne(pad_id),
                    num_beams=beam,
                    do_sample=False,
                    min_new_tokens=tokens,
                    max_new_tokens=tokens,
                    use_cache=True,
                    early_stopping=False,
                    length_penalty=1.0,
                )
            lengths += [int(row[1:].ne(pad_id).sum()) for row in out]  # minus the start token
        return lengths

    return run


def build(spec: dict) -> Runner:
    work, name, threads = Path(spec["workdir"]), spec["engine"], spec["threads"]
    if name.startswith("tongyeok "):
        return tongyeok(work / name.split()[1], threads)
    if name.startswith("ct2 "):
        return ctranslate2_engine(work, name.split()[1], threads, spec["eos_piece"])
    if name == "pytorch":
        return pytorch(work / "model.pt", threads)
    if name == "transformers":
        return transformers_generate(work / "hf", threads, spec["pad_id"], spec["eos_id"])
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
        lengths = run(sources, batch, beam, tokens)
        seconds = time.perf_counter() - start
        own = sum(me.cpu_times()[:2]) - own0
        other = max(0.0, busy_cpu_seconds() - busy0 - own)
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
