"""``python -m bench.cuda_check``: the shipped model on CUDA against the CPU, on a GPU machine.

What a GPU deployment must be able to trust, checked on real sentences:

1. Per-step log-probabilities: the fp32 and fp16 packages under ``CUDAExecutionProvider`` (fp32
   in full precision, the runtime's default, and with TF32, ONNX Runtime's own default) against
   the fp32 package on the CPU, teacher-forced on the same tokens (the CPU's greedy choice),
   over the full vocabulary.
2. Outputs: greedy and beam-4 translations of a test set on CUDA (fp32, fp16) against the CPU's,
   sentence by sentence, and sacreBLEU of each.
3. The IO-bound decoder keeps the caches on the device: ONNX Runtime's profiler counts the copies
   its CUDA provider makes between host and device per decoder step, with and without the IO
   binding, and the caches a step returns are checked to live on CUDA.

It prints a markdown summary and writes every number to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from contract.options import SearchOptions
from contract.package import load_package_config
from contract.tokenizers import load_tokenizer
from model.data import read_lines
from model.evaluate import score
from service.decoding.engine import Engine
from service.runtime.providers import CUDA, resolve
from service.runtime.sessions import PackageRuntime, RuntimeOptions


def runtime(package: Path, device: str, tf32: bool = False, binding: bool | None = None):
    profile = resolve(device)
    options = RuntimeOptions(
        providers=profile.providers,
        provider_options={CUDA.provider: {"use_tf32": "1" if tf32 else "0"}},
        io_binding=binding,
    )
    rt = PackageRuntime(package, options)
    if rt.profile is not profile:
        raise SystemExit(
            f"{profile.label} provider not active for {package}: {rt.decoder.get_providers()}"
        )
    return rt


def forced_distributions(
    runtimes: dict[str, PackageRuntime], sources: list[list[int]], steps: int
) -> dict[str, np.ndarray]:
    """Each runtime's full log-probability rows (B, steps, V), all fed the same tokens: the
    first runtime's greedy choice at every step."""
    first = next(iter(runtimes.values()))
    cfg = first.config
    rows = [s + [cfg.eos_id] for s in sources]
    width = max(len(r) for r in rows)
    src = np.full((len(rows), width), cfg.pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        src[i, : len(r)] = r
    mask = src != cfg.pad_id
    batch = len(rows)
    state = {}
    for name, rt in runtimes.items():
        cross = [rt.to_device(c) for c in rt.encode(src, mask).cross]
        state[name] = (cross, rt.empty_cache(batch))
    tokens = np.full((batch, 1), cfg.decoder_start_id, dtype=np.int64)
    out: dict[str, list[np.ndarray]] = {name: [] for name in runtimes}
    vocab = cfg.vocab_size
    for t in range(steps):
        positions = np.full((batch, 1), t, dtype=np.int64)
        self_mask = np.ones((batch, t + 1), dtype=bool)
        chosen = None
        for name, rt in runtimes.items():
            cross, past = state[name]
            step = rt.step(tokens, positions, np.arange(batch), self_mask, mask, vocab, past, cross)
            full = np.empty((batch, vocab), dtype=np.float32)
            np.put_along_axis(full, step.ids, step.logprobs.astype(np.float32), axis=1)
            out[name].append(full)
            state[name] = (cross, step.cache)
            if chosen is None:
                chosen = step.ids[:, :1]
        tokens = chosen
    return {name: np.stack(v, axis=1) for name, v in out.items()}


def compare(reference: np.ndarray, other: np.ndarray, top: int = 10) -> dict[str, float]:
    """Largest absolute log-prob differences: over all entries, over the reference's ``top``
    entries of each row, and how often both agree on the best token."""
    diff = np.abs(reference - other)
    best = np.argsort(-reference, axis=-1)[..., :top]
    top_diff = np.take_along_axis(diff, best, axis=-1)
    return {
        "max_abs_all": float(diff.max()),
        "max_abs_top10": float(top_diff.max()),
        "mean_abs_top10": float(top_diff.mean()),
        "argmax_agreement": float((reference.argmax(-1) == other.argmax(-1)).mean()),
    }


def translate_all(
    rt: PackageRuntime, sources: list[list[int]], beam: int, batch: int
) -> tuple[list[list[int]], float]:
    engine = Engine(rt)
    options = SearchOptions(beam_size=beam)
    engine.run(sources[:8], options, batch)  # warm-up: first-call allocations, kernel choice
    start = time.perf_counter()
    hyps = engine.run(sources, options, batch)
    return [h[0].tokens for h in hyps], time.perf_counter() - start


def copies_per_step(package: Path, binding: bool, sources: list[list[int]], steps: int) -> dict:
    """ONNX Runtime's profile of ``steps`` greedy decoder steps on CUDA: the Memcpy nodes its
    CUDA provider ran (host<->device copies it inserted) and the bytes they moved, per step."""
    rt = runtime(package, "cuda", binding=binding)
    so = rt.options.session_options()
    so.enable_profiling = True
    so.profile_file_prefix = f"/tmp/cuda-check-{'bound' if binding else 'plain'}"
    import onnxruntime as ort

    rt.decoder = ort.InferenceSession(
        str(rt.config.decoder_path), so, providers=rt.options.provider_list()
    )
    engine = Engine(rt)
    options = SearchOptions(beam_size=1, min_length=steps, max_length_a=0, max_length_b=steps)
    ids = [object() for _ in sources]
    engine.add(ids, sources, options)
    devices = set()
    ran = 0
    while engine.sequences:
        engine.step()
        ran += 1
        devices |= {c.device_name() for c in engine.running.cache if hasattr(c, "device_name")}
    profile = Path(rt.decoder.end_profiling())
    events = json.loads(profile.read_text())
    copies: dict[str, int] = {}
    moved: dict[str, int] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        op = e.get("args", {}).get("op_name", "")
        if not op.startswith("Memcpy"):
            continue
        copies[op] = copies.get(op, 0) + 1
        moved[op] = moved.get(op, 0) + int(e["args"].get("output_size", 0))
    return {
        "io_binding": binding,
        "steps": ran,
        "rows": len(sources),
        "copies_per_step": {k: v / ran for k, v in copies.items()},
        "bytes_per_step": {k: v / ran for k, v in moved.items()},
        "cache_devices": sorted(devices),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--fp32", required=True, help="fp32 package directory (exported with --cache gathered)"
    )
    p.add_argument("--fp16", required=True, help="fp16 package directory")
    p.add_argument("--source", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--sentences", type=int, default=0, help="first N of the test set (0: all)")
    p.add_argument("--forced", type=int, default=64, help="sentences of the per-step check")
    p.add_argument("--steps", type=int, default=24, help="decoder steps of the per-step check")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", required=True, help="JSON report")
    args = p.parse_args()

    fp32, fp16 = Path(args.fp32), Path(args.fp16)
    config = load_package_config(fp32)
    tokenizer = load_tokenizer(config)
    limit = args.sentences or None
    texts, refs = read_lines(args.source)[:limit], read_lines(args.reference)[:limit]
    sources = tokenizer.encode_batch(texts)
    report: dict = {}

    runtimes = {
        "cpu fp32": runtime(fp32, "cpu"),
        "cuda fp32 tf32": runtime(fp32, "cuda", tf32=True),
        "cuda fp32": runtime(fp32, "cuda", tf32=False),
        "cuda fp16": runtime(fp16, "cuda"),
    }
    dists = forced_distributions(runtimes, sources[: args.forced], args.steps)
    reference = dists["cpu fp32"]
    report["per_step"] = {
        name: compare(reference, d) for name, d in dists.items() if name != "cpu fp32"
    }
    print(
        "| per-step log-probs vs CPU fp32 | max abs (all V) | max abs (top 10) | "
        "mean abs (top 10) | same argmax |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in report["per_step"].items():
        print(
            f"| {name} | {r['max_abs_all']:.2e} | {r['max_abs_top10']:.2e} | "
            f"{r['mean_abs_top10']:.2e} | {r['argmax_agreement']:.4f} |"
        )

    outputs: dict[str, dict] = {}
    for beam in (1, 4):
        for name, rt in runtimes.items():
            hyps, seconds = translate_all(rt, sources, beam, args.batch)
            outputs[f"{name} beam {beam}"] = {"hyps": hyps, "seconds": seconds}
    report["outputs"] = {}
    print("\n| engine | search | sacreBLEU | identical to CPU fp32 | seconds |")
    print("| --- | --- | ---: | ---: | ---: |")
    for key, value in outputs.items():
        name, beam = key.rsplit(" beam ", 1)
        same = sum(
            a == b
            for a, b in zip(value["hyps"], outputs[f"cpu fp32 beam {beam}"]["hyps"], strict=True)
        )
        bleu = round(score([tokenizer.decode(h) for h in value["hyps"]], refs)[0], 2)
        report["outputs"][key] = {
            "bleu": bleu,
            "identical": same,
            "sentences": len(sources),
            "seconds": round(value["seconds"], 3),
        }
        search = "greedy" if beam == "1" else f"beam {beam}"
        print(f"| {name} | {search} | {bleu} | {same}/{len(sources)} | {value['seconds']:.2f} |")

    report["copies"] = [
        copies_per_step(fp32, binding, sources[:32], 16) for binding in (True, False)
    ]
    print("\n| decoder on CUDA | Memcpy nodes per step | bytes per step | caches live on |")
    print("| --- | --- | --- | --- |")
    for c in report["copies"]:
        print(
            f"| io_binding={c['io_binding']} | {c['copies_per_step']} | "
            f"{c['bytes_per_step']} | {c['cache_devices']} |"
        )
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
