"""Training: label-smoothed cross-entropy, Adam with inverse-sqrt warmup, token-based batches.

A run lives in one output directory: ``last.pt`` (full training state, rewritten every
``save_every`` steps and at each epoch end, for exact resume), ``epoch{N}.pt`` for the last
``average_last`` epochs, ``best.pt`` (best validation BLEU), ``averaged.pt`` (mean of the last
epochs), and ``log.jsonl`` (one line per validation: the BLEU-vs-time curve).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from contract.tokenizer import EOS_ID, PAD_ID, Tokenizer
from model.checkpoint import Checkpoint, average_checkpoints, load_checkpoint
from model.data import (
    Batch,
    build_examples,
    iterate_batches,
    read_parallel,
    token_batches,
)
from model.search import SearchOptions
from model.train_config import TrainConfig
from model.transformer import Transformer
from model.translate import translate_ids


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    losses: list[float] = field(default_factory=list)  # training loss per optimizer step
    best_bleu: float | None = None


def inverse_sqrt(step: int, warmup: int) -> float:
    """LR multiplier: linear warmup to 1, then decay as sqrt(warmup / step) (§5.3)."""
    step = max(step, 1)
    return min(step / warmup, math.sqrt(warmup / step))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def batch_loss(model: Transformer, batch: Batch, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """Summed (smoothed loss, nll) over the non-pad target tokens; only those are projected."""
    states = model(batch.src, batch.tgt_in)  # (B, T, D)
    keep = batch.tgt_out.ne(model.cfg.pad_id)
    logits = model.project(states[keep]).float()  # (N, V)
    target = batch.tgt_out[keep]
    loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing, reduction="sum")
    nll = F.cross_entropy(logits.detach(), target, reduction="sum")
    return loss, nll


class Trainer:
    """One training run; ``run()`` trains to the end, resuming from ``out_dir/last.pt``."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg = config
        self.log = log
        self.out = Path(config.out_dir)
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)

    # -- setup -----------------------------------------------------------------------------------

    def prepare(self) -> None:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        pairs = read_parallel(cfg.train_source, cfg.train_target or None)
        resume_path = self.out / "last.pt"
        self.resumed = resume_path.exists()
        if self.resumed:
            ckpt = load_checkpoint(resume_path)
            self.tokenizer = ckpt.tokenizer
            model_cfg = ckpt.config
        else:
            seed_everything(cfg.seed)
            self.log(f"training a {cfg.vocab_size}-piece joint SentencePiece vocabulary")
            self.tokenizer = Tokenizer.train(
                (s for pair in pairs for s in pair),
                cfg.vocab_size,
                cfg.tokenizer_type,
                seed=cfg.seed,
            )
            model_cfg = cfg.model_config(self.tokenizer.vocab_size)
        self.examples, report = build_examples(
            pairs, self.tokenizer.encode, EOS_ID, cfg.max_sentence_tokens
        )
        self.log(f"{cfg.train_source}: {report}")
        if not self.examples:
            raise ValueError("no training pairs left after filtering")
        self.valid: list[tuple[str, str]] = []
        if cfg.valid_source:
            self.valid = read_parallel(cfg.valid_source, cfg.valid_target or None)
            self.valid_examples, vreport = build_examples(
                self.valid, self.tokenizer.encode, EOS_ID, cfg.max_positions - 1
            )
            self.log(f"{cfg.valid_source}: {vreport}")

        self.model = Transformer(model_cfg).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.lr,
            betas=cfg.adam_betas,
            eps=1e-9,
            weight_decay=cfg.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: inverse_sqrt(s + 1, cfg.warmup_steps)
        )
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.amp_dtype = (
            torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        )
        self.scaler = torch.amp.GradScaler(enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.step, self.epoch, self.batch_in_epoch = 0, 1, 0
        self.losses: list[float] = []
        self.elapsed = 0.0
        self.best: list[tuple[float, int]] = []  # (bleu, epoch), best first
        if self.resumed:
            self.restore(ckpt)
            self.model.zero_pad_embedding()  # checkpoints from before the rule was kept
        n_params = sum(p.numel() for p in self.model.parameters())
        self.log(
            f"model: {n_params / 1e6:.1f}M parameters, {model_cfg}, device {self.device}"
            + (f", resumed at step {self.step} (epoch {self.epoch})" if self.resumed else "")
        )

    def restore(self, ckpt: Checkpoint) -> None:
        state = ckpt.train_state or {}
        self.model.load_state_dict(ckpt.state_dict)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch"]
        self.losses = list(state["losses"])
        self.elapsed = state["elapsed"]
        self.best = [tuple(b) for b in state["best"]]
        set_rng_state(state["rng"])

    def checkpoint(self, with_state: bool) -> Checkpoint:
        train_state = None
        if with_state:
            train_state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "batch": self.batch_in_epoch,
                "losses": self.losses,
                "elapsed": self.elapsed,
                "best": self.best,
                "rng": rng_state(),
            }
        return Checkpoint(
            config=self.model.cfg,
            tokenizer=self.tokenizer,
            state_dict=self.model.state_dict(),
            source_lang=self.cfg.source_lang,
            target_lang=self.cfg.target_lang,
            train_state=train_state,
            metadata={"train_config": asdict(self.cfg), "step": self.step, "epoch": self.epoch},
        )

    # -- loop ------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        self.prepare()
        cfg = self.cfg
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes > 0 else math.inf
        while self.epoch <= cfg.epochs and not self.reached_max_steps():
            self.train_epoch()
            if self.reached_max_steps() and self.batch_in_epoch:
                break  # stopped mid-epoch by max_steps: last.pt already holds the state
            self.end_epoch()
            if time.monotonic() >= deadline:
                self.log(f"stopping after epoch {self.epoch - 1}: --max-minutes {cfg.max_minutes}")
                break
        self.finish()
        best = self.best[0][0] if self.best else None
        return TrainResult(self.out, self.step, self.losses, best)

    def reached_max_steps(self) -> bool:
        return bool(self.cfg.max_steps) and self.step >= self.cfg.max_steps

    def train_epoch(self) -> None:
        cfg = self.cfg
        batches = token_batches(self.examples, cfg.max_tokens, cfg.seed, self.epoch)
        groups = [batches[i : i + cfg.accumulate] for i in range(0, len(batches), cfg.accumulate)]
        self.model.train()
        bar = tqdm(
            total=len(groups),
            initial=self.batch_in_epoch,
            desc=f"epoch {self.epoch}",
            disable=not cfg.progress,
            dynamic_ncols=True,
        )
        tokens_seen, started = 0, time.perf_counter()
        for group in groups[self.batch_in_epoch :]:
            loss = self.train_step(group)
            self.batch_in_epoch += 1
            tokens_seen += sum(len(self.examples[i].tgt) for b in group for i in b)
            seconds = time.perf_counter() - started
            bar.set_postfix(
                loss=f"{loss:.3f}",
                lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                tok_s=f"{tokens_seen / max(seconds, 1e-9):.0f}",
            )
            bar.update()
            if self.step % cfg.save_every == 0 or self.reached_max_steps():
                self.elapsed += time.perf_counter() - started
                started, tokens_seen = time.perf_counter(), 0
                self.checkpoint(with_state=True).save(self.out / "last.pt")
            if self.reached_max_steps():
                break
        self.elapsed += time.perf_counter() - started
        bar.close()

    def train_step(self, group: list[list[int]]) -> float:
        """One optimizer step over ``group`` micro-batches; loss is per target token."""
        n_tokens = sum(len(self.examples[i].tgt) for b in group for i in b)
        total = 0.0
        for batch in iterate_batches(self.examples, group, PAD_ID, PAD_ID):
            batch = batch.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                loss, _ = batch_loss(self.model, batch, self.cfg.label_smoothing)
            loss = loss / n_tokens
            self.scaler.scale(loss).backward()
            total += float(loss.detach())
        if self.cfg.clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_pad_embedding()
        self.scheduler.step()
        self.step += 1
        self.losses.append(total)
        return total

    def end_epoch(self) -> None:
        epoch = self.epoch
        record: dict[str, Any] = {"epoch": epoch, "step": self.step}
        if self.valid:
            record.update(self.validate(self.model))
        record["train_seconds"] = round(self.elapsed, 1)
        self.log(json.dumps(record))
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

        self.epoch, self.batch_in_epoch = epoch + 1, 0
        ckpt = self.checkpoint(with_state=False)
        ckpt.save(self.out / f"epoch{epoch}.pt")
        if "bleu" in record:
            self.best = sorted(self.best + [(record["bleu"], epoch)], reverse=True)
            if self.best[0][1] == epoch:
                shutil.copyfile(self.out / f"epoch{epoch}.pt", self.out / "best.pt")
        self.checkpoint(with_state=True).save(self.out / "last.pt")
        stale = epoch - self.cfg.average_last
        if stale >= 1 and (self.out / f"epoch{stale}.pt").exists():
            (self.out / f"epoch{stale}.pt").unlink()

    @torch.no_grad()
    def validate(self, model: Transformer) -> dict[str, float]:
        """Validation nll per token and, if enabled, sacreBLEU of greedy/beam translations."""
        model.eval()
        total, tokens = 0.0, 0
        batches = token_batches(self.valid_examples, self.cfg.max_tokens, 0, 0)
        for batch in iterate_batches(self.valid_examples, batches, PAD_ID, PAD_ID):
            _, nll = batch_loss(model, batch.to(self.device), 0.0)
            total, tokens = total + float(nll), tokens + batch.n_tokens
        result = {
            "valid_nll": round(total / tokens, 4),
            "valid_ppl": round(math.exp(total / tokens), 2),
        }
        if self.cfg.valid_bleu:
            sources = [self.tokenizer.encode(src) for src, _ in self.valid]
            hyps = translate_ids(model, sources, SearchOptions(beam_size=self.cfg.valid_beam), 128)
            texts = [self.tokenizer.decode(h[0].tokens) for h in hyps]
            refs = [tgt for _, tgt in self.valid]
            result["bleu"] = round(sacrebleu.corpus_bleu(texts, [refs]).score, 2)
        model.train()
        return result

    def finish(self) -> None:
        """Average the last epoch checkpoints into ``averaged.pt`` and report its validation."""
        epochs = sorted(
            int(p.stem[5:]) for p in self.out.glob("epoch*.pt") if p.stem[5:].isdigit()
        )[-self.cfg.average_last :]
        if len(epochs) < 2:
            return
        weights = average_checkpoints([self.out / f"epoch{e}.pt" for e in epochs])
        ckpt = self.checkpoint(with_state=False)
        ckpt.state_dict = weights
        ckpt.metadata["averaged_epochs"] = epochs
        ckpt.save(self.out / "averaged.pt")
        if self.valid:
            averaged = Transformer(self.model.cfg).to(self.device)
            averaged.load_state_dict(weights)
            record = {"averaged_epochs": epochs, **self.validate(averaged)}
            self.log(json.dumps(record))
            with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def train(config: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    return Trainer(config, log).run()
