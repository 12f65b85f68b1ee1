"""Bringing a MarianMTModel (OPUS-MT) from the Hugging Face Hub, through ``huggingface_hub``.

Its cache, resumable downloads, progress bars, ``HF_ENDPOINT``, ``HF_TOKEN`` and offline mode are
the library's own: a model pulled once is not downloaded again, an interrupted download resumes,
and a mirror or a private hub works as it does for Transformers. Only the files the import reads
are fetched (one weights file: safetensors where the repository has it, never its TensorFlow,
Flax or Rust copies), then ``export/marian.py`` reads the snapshot like any local directory.
"""

from __future__ import annotations

import re
from pathlib import Path

# What ``load_marian`` reads, and the model card (for the package's description).
WANTED = (
    "config.json",
    "source.spm",
    "target.spm",
    "vocab.json",
    "target_vocab.json",
    "tokenizer_config.json",
    "generation_config.json",
    "README.md",
)
WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # in order of preference


class PullError(ValueError):
    """The repository cannot be pulled as a MarianMTModel: said in one line, with what to do."""


def files_to_fetch(listed: list[str]) -> list[str]:
    """The files of a repository listing that the import needs; PullError when it has no
    weights Tongyeok reads (a TensorFlow-only or non-Marian repository)."""
    weights = next((w for w in WEIGHTS if w in listed), None)
    if weights is None:
        raise PullError(
            f"the repository has neither {' nor '.join(WEIGHTS)}: not a PyTorch MarianMTModel"
        )
    missing = [
        f for f in ("config.json", "source.spm", "target.spm", "vocab.json") if f not in listed
    ]
    if missing:
        raise PullError(f"the repository lacks {', '.join(missing)}: not a MarianMTModel")
    return [f for f in WANTED if f in listed] + [weights]


def download(repo_id: str, revision: str | None = None) -> Path:
    """The snapshot directory of ``repo_id`` in the Hugging Face cache, holding what the import
    needs (downloaded, or found there already)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        listed = HfApi().list_repo_files(repo_id, revision=revision)
        return Path(
            snapshot_download(repo_id, revision=revision, allow_patterns=files_to_fetch(listed))
        )
    except GatedRepoError:
        raise PullError(
            f"{repo_id} is gated: accept its terms on the hub and set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise PullError(
            f"no model {repo_id!r} on the hub (a typo? a private one needs HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise PullError(f"{repo_id} has no revision {revision!r}") from None
    except HfHubHTTPError as exc:
        raise PullError(f"the hub refused {repo_id}: {exc}") from None
    except (HTTPError, OSError) as exc:  # no connection, offline mode, a full disk
        raise PullError(f"cannot download {repo_id}: {exc} (HF_ENDPOINT, proxy, disk?)") from None


def card_description(directory: Path, origin: str) -> str:
    """What the model is for, from its model card (README.md) when there is one: ``origin``
    and the training data the card names (OPUS-MT cards list it as ``* dataset: opus``)."""
    parts = [origin]
    card = directory / "README.md"
    text = card.read_text(encoding="utf-8", errors="replace") if card.is_file() else ""
    datasets = re.findall(r"^\s*[*-]\s*dataset:\s*(.+?)\s*$", text, flags=re.MULTILINE)
    if datasets:
        parts.append(f"trained on {', '.join(dict.fromkeys(datasets))} data")
    return ", ".join(parts) + (" (see its model card)" if text else "")
