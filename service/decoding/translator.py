"""Text in, text out over a model package: tokenizer + engine. Torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from contract.options import Hypothesis, SearchOptions
from contract.tokenizers import for_target, load_tokenizer
from service.decoding.engine import Engine
from service.runtime.sessions import PackageRuntime, RuntimeOptions


class Translator:
    """One package loaded for translation; the CLI and the server both use it."""

    def __init__(
        self,
        package: str | Path,
        options: RuntimeOptions | None = None,
        target: str | None = None,
    ) -> None:
        """``target``: which of the package's targets (default: its first)."""
        self.runtime = PackageRuntime(package, options)
        config = self.runtime.config
        self.tokenizer = for_target(load_tokenizer(config), config, target or config.target_lang)
        self.engine = Engine(self.runtime)

    def translate_hypotheses(
        self, texts: Sequence[str], options: SearchOptions, max_batch: int = 64
    ) -> list[list[Hypothesis]]:
        ids = self.tokenizer.encode_batch(list(texts))
        return self.engine.run(ids, options, max_batch)

    def translate(
        self, texts: Sequence[str], options: SearchOptions | None = None, max_batch: int = 64
    ) -> list[str]:
        """Best translation of every text, in input order; blank lines stay blank."""
        options = options or SearchOptions()
        nonblank = [i for i, t in enumerate(texts) if t.strip()]
        hyps = self.translate_hypotheses([texts[i] for i in nonblank], options, max_batch)
        out = [""] * len(texts)
        for i, h in zip(nonblank, hyps, strict=True):
            out[i] = self.tokenizer.decode(h[0].tokens)
        return out
