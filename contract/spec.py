"""The two graphs' input/output names, dtypes and dynamic axes, declared once.

The exporter traces with these names, writes them into the package's ``config.json``, and the
engine reads them from there: no tensor name is spelled anywhere else. Per-layer tensors take the
layer index as a suffix (``past_key.0``).

Decoder design (see docs/decisions.md, "What the decoder graph emits"):
- it emits the top ``k`` log-probabilities of every row and their token ids (``k`` is an input:
  1 for greedy, 2 x beam for beam search, the vocabulary size for full distributions), so only
  B x k numbers leave the device per step instead of B x V;
- it gathers the rows of the self-attention cache by ``cache_index`` before appending the new
  position, so beam reordering, finished rows leaving and new rows joining a running batch are all
  one index vector, applied inside the graph;
- or (fused CPU packages, decision #31) it writes the new position into the cache in place: one
  buffer per layer, row r's positions in its first columns; the runtime applies the same index
  vector to the buffers before the step, copying only the rows that moved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

OPSET = 17  # LayerNormalization is a single op from 17 on, which ORT fuses well


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    axes: tuple[str, ...]  # symbolic names for dynamic axes, numbers as strings for fixed ones


@dataclass(frozen=True)
class GraphSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx.export's dynamic_axes: every non-numeric axis is dynamic."""
        return {
            t.name: {i: a for i, a in enumerate(t.axes) if not a.isdigit()}
            for t in (*self.inputs, *self.outputs)
        }

    def to_dict(self) -> dict[str, list[dict[str, object]]]:
        """As written to config.json (axes as lists, the way JSON reads them back)."""

        def entry(t: TensorSpec) -> dict[str, object]:
            return {**asdict(t), "axes": list(t.axes)}

        return {
            "inputs": [entry(t) for t in self.inputs],
            "outputs": [entry(t) for t in self.outputs],
        }


def kv_pair(prefix: str, layer: int) -> tuple[str, str]:
    """Names of one layer's key and value tensors: ("past_key.0", "past_value.0")."""
    return f"{prefix}_key.{layer}", f"{prefix}_value.{layer}"


def kv_specs(prefix: str, layers: int, dtype: str, axes: tuple[str, ...]) -> list[TensorSpec]:
    return [TensorSpec(name, dtype, axes) for i in range(layers) for name in kv_pair(prefix, i)]


KV_AXES_SRC = ("batch", "heads", "src_len", "head_dim")
KV_AXES_SHARED = ("sources", "heads", "src_len", "head_dim")  # batch = sources x rows per source
KV_AXES_PAST = ("prev_batch", "heads", "past_len", "head_dim")
KV_AXES_PRESENT = ("batch", "heads", "present_len", "head_dim")
# In place (docs/decisions.md #31): past and present are one buffer per layer, row r of the batch
# in row r, a row's position p in column p; the runtime binds present to past's memory.
KV_AXES_IN_PLACE = ("batch", "heads", "capacity", "head_dim")


def encoder_spec(decoder_layers: int, float_dtype: str = "float32") -> GraphSpec:
    """``float_dtype``: of the states and cross keys/values (float16 in fp16 packages). Their
    values at padded source positions are unspecified (finite; masked wherever they are read)."""
    cross = kv_specs("cross", decoder_layers, float_dtype, KV_AXES_SRC)
    return GraphSpec(
        inputs=(
            TensorSpec("src_ids", "int64", ("batch", "src_len")),
            TensorSpec("src_mask", "bool", ("batch", "src_len")),  # True at real tokens
        ),
        outputs=(
            TensorSpec("encoder_states", float_dtype, ("batch", "src_len", "d_model")),
            *cross,
        ),
    )


def decoder_spec(
    decoder_layers: int,
    float_dtype: str = "float32",
    shared_sources: bool = False,
    in_place: bool = False,
) -> GraphSpec:
    """``float_dtype``: of the caches; the log-probabilities are float32 in every precision.
    ``shared_sources``: the cross keys/values and source mask have one row per *source*
    (axis ``sources``), read by the batch / sources consecutive rows that share it (a sentence's
    beams), instead of one per row (axis ``batch``); the engine reads which from the axis name.
    ``in_place``: the self-attention cache is written in place (axis ``capacity``; no
    ``cache_index`` or ``self_mask``: the runtime puts each row's past in its row beforehand, and
    a row's positions say which columns are its own); the runtime reads which from the axis."""
    cache_axes = KV_AXES_IN_PLACE if in_place else KV_AXES_PAST
    past = kv_specs("past", decoder_layers, float_dtype, cache_axes)
    src_axes = KV_AXES_SHARED if shared_sources else KV_AXES_SRC
    cross = kv_specs("cross", decoder_layers, float_dtype, src_axes)
    present_axes = KV_AXES_IN_PLACE if in_place else KV_AXES_PRESENT
    present = kv_specs("present", decoder_layers, float_dtype, present_axes)
    rows = (
        ()
        if in_place
        else (
            TensorSpec("cache_index", "int64", ("batch",)),  # row of the past cache it continues
            TensorSpec("self_mask", "bool", ("batch", "present_len")),  # True at real positions
        )
    )
    return GraphSpec(
        inputs=(
            # New tokens of every row: 1 per step; a whole prefix at once with an empty past.
            TensorSpec("input_ids", "int64", ("batch", "new_len")),
            TensorSpec("positions", "int64", ("batch", "new_len")),  # positions in its own row
            *rows,
            TensorSpec("src_mask", "bool", (src_axes[0], "src_len")),
            TensorSpec("top_k", "int64", ("1",)),
            *past,
            *cross,
        ),
        outputs=(
            TensorSpec("topk_logprobs", "float32", ("batch", "k")),
            TensorSpec("topk_ids", "int64", ("batch", "k")),
            *present,
        ),
    )


def alignment_layer(decoder_layers: int) -> int:
    """The decoder layer whose cross-attention the aligner graph emits: the last of a shallow
    decoder, the one before the last of a deep one (Garg et al. 2019: layer 5 of 6 aligns best;
    the shipped 3-layer model's last layer aligns best: docs/decisions.md #47)."""
    return decoder_layers - 2 if decoder_layers >= 6 else decoder_layers - 1


def aligner_spec(layer: int, float_dtype: str = "float32") -> GraphSpec:
    """Teacher-forced cross-attention of decoder layer ``layer`` averaged over its heads: for each
    target position (``input_ids`` is the start token then the target), where it looked in the
    source. Reads the encoder's cross keys/values of layers 0..``layer`` (one row per sentence)."""
    cross = kv_specs("cross", layer + 1, float_dtype, KV_AXES_SRC)
    return GraphSpec(
        inputs=(
            TensorSpec("input_ids", "int64", ("batch", "tgt_len")),
            TensorSpec("src_mask", "bool", ("batch", "src_len")),
            *cross,
        ),
        outputs=(TensorSpec("alignment", "float32", ("batch", "tgt_len", "src_len")),),
    )
