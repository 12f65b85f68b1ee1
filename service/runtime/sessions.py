"""ONNX Runtime sessions for one model package: the encoder pass and one decoder step, on numpy.

Torch-free. Names, dtypes and layer counts all come from the package's ``config.json``. This is the
thin layer the engine (search, batching) is built on, and what the export parity checks run.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from contract.package import CONFIG, WEIGHTS, PackageConfig, PackageError, load_package_config
from contract.spec import KV_AXES_IN_PLACE, KV_AXES_SHARED, kv_pair
from service.runtime.providers import CPU, HOST, ProviderList, prepare, provider_list, running
from service.runtime.tensor_ops import NUMPY, GraphOps, Tensor, TensorOps, as_array, as_value

# An in-place cache grows by this many positions at a time (each growth copies it once, and holds
# the old and the new buffers at once). 16 rather than 32: a lower peak at beam 4, batch 64, and
# no fewer tokens/s (docs/decisions.md #34).
CACHE_CHUNK = 16
SPINNING = ("off", "in-run", "always")


@dataclass(frozen=True)
class RuntimeOptions:
    # ONNX Runtime's providers, preferred first (a device's: service/runtime/providers.py).
    providers: tuple[str, ...] = CPU.providers
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per physical core)
    graph_optimization: str = "all"  # disable | basic | extended | all
    # ONNX Runtime's CPU arena keeps every peak it ever saw and grows with each new shape; with
    # decoding's ever-changing shapes that reads as a leak. Off by default (tests hold the line).
    cpu_arena: bool = False
    # When ONNX Runtime's idle intra-op workers spin instead of sleeping (docs/decisions.md #11,
    # #32). "in-run": while a run lasts, so each of its ~80 small parallel sections starts without
    # a wake-up, then they stop, leaving the cores to the Python side between decoder steps (more
    # tokens/s than "off", #32). "always" (ONNX Runtime's default) also spins between runs: only
    # with cores to spare. "off": they always sleep. The service picks
    # off where its threads take every core (service/scheduling/repository.py serving_spinning).
    spinning: str = "in-run"  # off | in-run | always
    # Run the decoder through an IO binding that leaves the caches where the provider computed
    # them and brings only the top-k back to the host; None: as the device's profile says.
    io_binding: bool | None = None
    # Options for a listed provider, by its name, instead of its profile's (CUDA's: use_tf32=0).
    provider_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def provider_list(self) -> ProviderList:
        """``providers`` as ONNX Runtime takes them, each with its options."""
        return provider_list(self.providers, self.provider_options)

    def session_options(self) -> ort.SessionOptions:
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if self.graph_optimization not in levels:
            raise ValueError(
                f"graph_optimization must be one of {sorted(levels)}, "
                f"got {self.graph_optimization!r}"
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = levels[self.graph_optimization]
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = self.cpu_arena
        opts.enable_mem_pattern = False  # shapes change every step: patterns never repeat
        if self.spinning not in SPINNING:
            raise ValueError(f"spinning must be one of {SPINNING}, got {self.spinning!r}")
        opts.add_session_config_entry(
            "session.intra_op.allow_spinning", "0" if self.spinning == "off" else "1"
        )
        if self.spinning == "in-run":
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        return opts


def shared_weights(config: PackageConfig) -> list[tuple[dict[str, str], ort.OrtValue]]:
    """The tensors that more than one of the package's graphs read (``weights.shared`` in its
    config, docs/decisions.md #33), each mapped once from the weights file: each graph's name for
    it, and the value its session is given instead of mapping its own copy. The values must
    outlive the sessions."""
    where = config.directory / CONFIG
    entry = config.raw.get("weights") or {}
    listed = (entry.get("shared") or []) if isinstance(entry, dict) else None
    if not isinstance(listed, list):
        raise PackageError(f"{where}: 'weights' must be an object with a list 'shared'")
    if not listed:
        return []
    name = entry.get("file", WEIGHTS)
    if not isinstance(name, str) or Path(name).name != name or not name:
        raise PackageError(f"{where}: weights file {name!r} is not a file name in the package")
    path = config.directory / name
    if not path.is_file():
        raise PackageError(f"{path}: missing")
    size = path.stat().st_size
    values = []
    for item in listed:
        try:
            dtype = np.dtype(item["dtype"])
            shape = tuple(int(n) for n in item["shape"])
            offset, length = int(item["offset"]), int(item["bytes"])
            names = {str(graph): str(tensor) for graph, tensor in dict(item["names"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{where}: unreadable weights.shared entry {item!r}") from exc
        if (
            offset < 0
            or min(shape, default=1) < 0
            or length != dtype.itemsize * math.prod(shape)  # Python ints: no overflow
            or offset + length > size
        ):
            raise PackageError(
                f"{where}: weights.shared entry {item!r} does not fit {name} ({size} bytes)"
            )
        array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
        values.append((names, ort.OrtValue.ortvalue_from_numpy(array)))
    return values


@dataclass
class EncoderOutput:
    states: np.ndarray  # (B, S, D)
    cross: list[np.ndarray]  # cross_key.0, cross_value.0, ... each (B, H, S, Dh)


@dataclass
class StepOutput:
    logprobs: np.ndarray  # (B, k) float32, best first
    ids: np.ndarray  # (B, k) int64
    # present_key.0, present_value.0, ... each (B, H, P + 1, Dh); in place: the buffers the step
    # wrote into, (B, H, capacity, Dh), row r's positions in its first columns
    cache: list[Tensor]


class PackageRuntime:
    """The two sessions of a package, with inputs assembled by name from its config."""

    def __init__(self, package: str | Path | PackageConfig, options: RuntimeOptions | None = None):
        self.config = (
            package if isinstance(package, PackageConfig) else load_package_config(package)
        )
        self.options = options or RuntimeOptions()
        dec = self.config.decoder_io
        past_key = next(t for t in dec["inputs"] if t["name"] == kv_pair("past", 0)[0])
        # Whether the decoder writes its self-attention cache in place (contract/spec.py).
        self.in_place = past_key["axes"][2] == KV_AXES_IN_PLACE[2]
        so = self.options.session_options()
        providers = self.options.provider_list()
        prepare(self.options.providers)  # what a provider loads first (CUDA's libraries), once
        # Held for the sessions' lifetime: they read these tensors where they are mapped.
        self._shared_weights = shared_weights(self.config)
        self.encoder = ort.InferenceSession(
            str(self.config.encoder_path), self.graph_options("encoder"), providers=providers
        )
        self.decoder = ort.InferenceSession(
            str(self.config.decoder_path), self.graph_options("decoder"), providers=providers
        )
        aligner = self.config.aligner_io
        # Where tags go (contract/spec.py): run only for text with inline markup, never per step.
        self.aligner = (
            None
            if aligner is None
            else ort.InferenceSession(
                str(self.config.directory / aligner["file"]),
                self.graph_options("aligner"),
                providers=providers,
            )
        )
        self.aligner_inputs = [] if aligner is None else [t["name"] for t in aligner["inputs"]]
        self.decoder_inputs = [t["name"] for t in dec["inputs"]]
        self.decoder_outputs = [t["name"] for t in dec["outputs"]]
        self.cache_dtype = np.dtype(past_key["dtype"])
        self.layers = self.config.decoder_layers
        self.profile = running(self.decoder.get_providers())  # the device it runs on
        needs = self.profile.cache_layout
        if self.in_place and needs not in (None, "in-place"):  # else run elsewhere, between copies
            raise PackageError(
                f"package {self.config.name!r} writes its cache in place "
                f"({self.profile.cache_reason}): for {self.profile.label}, export it with "
                f"--cache {needs}"
            )
        self.device = self.profile.memory  # where caches and cross keys/values live
        binding = self.options.io_binding
        self.io_binding = self.profile.io_binding if binding is None else binding
        # Joins and compactions reshape the caches and cross keys/values where they live: on the
        # decoder's device when they stay there between steps (service/runtime/tensor_ops.py).
        self.tensor_ops: TensorOps = (
            GraphOps(self.cache_dtype, self.device, providers, so) if self.io_binding else NUMPY
        )
        # Whether the beams of a sentence may share one row of cross keys/values (contract/spec.py:
        # the decoder names their first axis ``sources`` instead of ``batch``).
        cross_key = next(t for t in dec["inputs"] if t["name"] == kv_pair("cross", 0)[0])
        self.shared_sources = cross_key["axes"][0] == KV_AXES_SHARED[0]
        # Each stepping thread's IO binding, kept between steps (see run_bound).
        self._bindings = threading.local()
        # Buffers whose rows are out of order (``place``): id of the first -> (it, the order).
        self._orders: dict[int, tuple[weakref.ref[np.ndarray], np.ndarray]] = {}

    def graph_options(self, graph: str) -> ort.SessionOptions:
        """The session options of ``graph`` (encoder | decoder | aligner): the runtime's, with the
        tensors it shares with the other graphs given instead of loaded again."""
        options = self.options.session_options()
        if graph == "aligner":
            # Run only for text with tags: its MatMuls read the decoder's weights where they are
            # mapped instead of keeping a packed copy of them (the decoder's layers, again).
            options.add_session_config_entry("session.disable_prepacking", "1")
        for names, value in self._shared_weights:
            # Only what the encoder and the decoder both read is handed over: a tensor given this
            # way stays resident beside the packed copy ONNX Runtime makes of a MatMul's weights,
            # so the decoder's layers, which the aligner reads too, are left to each session to
            # map from the file itself (the aligner packs nothing).
            if graph in names and {"encoder", "decoder"} <= names.keys():
                options.add_initializer(names[graph], value)
        return options

    def encode(self, src_ids: np.ndarray, src_mask: np.ndarray) -> EncoderOutput:
        outputs = self.encoder.run(None, {"src_ids": src_ids, "src_mask": src_mask})
        return EncoderOutput(states=outputs[0], cross=list(outputs[1:]))

    def align(self, src_ids: np.ndarray, src_mask: np.ndarray, tgt_ids: np.ndarray) -> np.ndarray:
        """(B, T, S) teacher-forced cross-attention of the aligner's layer: for ``tgt_ids`` (the
        start token then the target, right-padded), where each position looked in the source."""
        if self.aligner is None:
            raise PackageError(f"package {self.config.name!r} has no aligner graph")
        cross = self.encode(src_ids, src_mask).cross
        feed: dict[str, Any] = {"input_ids": tgt_ids, "src_mask": src_mask}
        names = [n for i in range(self.layers) for n in kv_pair("cross", i)]
        feed.update((n, v) for n, v in zip(names, cross, strict=True) if n in self.aligner_inputs)
        (alignment,) = self.aligner.run(["alignment"], feed)
        return np.asarray(alignment)

    def to_device(self, array: Tensor) -> ort.OrtValue:
        """A tensor the decoder reads at every step (cross keys/values), placed once where the
        decoder runs instead of being copied there at each step (as it is if it already is)."""
        if self.device == HOST:
            return as_value(array)
        if isinstance(array, ort.OrtValue):
            if array.device_name().lower() == self.device:
                return array
            array = array.numpy()
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def empty_cache(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self.config.n_heads, 0, self.config.head_dim)
        return [np.zeros(shape, dtype=self.cache_dtype) for _ in range(2 * self.layers)]

    def step(
        self,
        input_ids: np.ndarray,  # (B, T) int64, T = 1 per incremental step
        positions: np.ndarray,  # (B, T) int64
        cache_index: np.ndarray,  # (B,) int64 into the rows of ``past``
        self_mask: np.ndarray,  # (B, P + T) bool
        src_mask: np.ndarray,  # (B, S) bool; (B / g, S) with shared sources, as ``cross``
        top_k: int,
        past: list[Tensor],
        cross: list[Tensor],
    ) -> StepOutput:
        order = None  # in place: the buffer row of each row, None when row r is in row r
        if self.in_place:
            sources = len(src_mask) if self.shared_sources else len(input_ids)
            share = len(input_ids) // sources if sources and len(input_ids) % sources == 0 else 1
            past, order = self.place(past, cache_index, positions, share)
            if order is not None:  # the graph's row b reads buffer row b: feed rows there
                input_ids, positions = in_rows(input_ids, order), in_rows(positions, order)
        feed: dict[str, Tensor] = {
            "input_ids": input_ids,
            "positions": positions,
            "cache_index": cache_index,
            "self_mask": self_mask,
            "src_mask": src_mask,
            "top_k": np.array([top_k], dtype=np.int64),
        }
        for i in range(self.layers):
            for (key, value), source in ((kv_pair("past", i), past), (kv_pair("cross", i), cross)):
                feed[key], feed[value] = source[2 * i], source[2 * i + 1]
        # an in-place decoder takes neither cache_index nor self_mask
        if self.in_place or self.io_binding:
            logprobs, ids, present = self.run_bound(
                {name: feed[name] for name in self.decoder_inputs}
            )
        else:  # holds the arrays alive
            values = {name: as_value(feed[name]) for name in self.decoder_inputs}
            outputs = self.decoder.run_with_ort_values(self.decoder_outputs, values)
            logprobs, ids, present = outputs[0].numpy(), outputs[1].numpy(), outputs[2:]
        if order is not None:  # back in the caller's row order
            logprobs, ids = logprobs[order], ids[order]
        return StepOutput(
            logprobs=logprobs,
            ids=ids,
            cache=list(past) if self.in_place else list(present),
        )

    def release(self) -> None:
        """Let go of what the calling thread's IO binding holds (the last step's caches and cross
        keys/values): the engine calls it when its batch empties, so that an idle engine keeps no
        batch's memory."""
        vars(self._bindings).clear()

    def place(
        self,
        past: list[Tensor],
        cache_index: np.ndarray,
        positions: np.ndarray,
        rows_per_source: int = 1,
    ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """In-place buffers for this step, and the buffer row of each row (None: row r in row r):
        each row's buffer row holds the past of ``past``'s row ``cache_index[r]`` (its first
        ``positions[r, 0]`` columns), with room for the new positions. Rows that continue their
        own past are not touched (greedy search never copies). In beam search, the first row to
        continue a past takes over its buffer row, and only the others copy it, into the rows no
        one continues among those of the same source (``rows_per_source`` consecutive rows share
        one): which buffer row holds which beam does not matter to the graph, so the order is
        kept beside the buffers (for the next step's ``cache_index``) instead of restored by
        copies, which halves the rows copied in beam search (docs/decisions.md #35). A new buffer
        (joins, compactions, or the longest row outgrowing it) is made in row order."""
        buffers = [as_array(p) for p in past]
        rows, (have, _, capacity, _) = len(cache_index), buffers[0].shape
        lengths = positions[:, 0]  # cached positions of every row
        need = int(positions[:, -1].max()) + 1 if rows else 0
        if rows and int(lengths.max()) > capacity:
            raise ValueError(
                f"a row's positions start at {int(lengths.max())}, but the cache it continues "
                f"holds {capacity} positions per row"
            )
        # The buffer rows of the last step's rows, if these are buffers a step wrote out of order.
        kept = self._orders.get(id(past[0]))
        if kept is not None and kept[0]() is past[0]:
            source = kept[1][cache_index]
            del self._orders[id(past[0])]
        else:
            source = cache_index
        # Written into only if the decoder will see this very memory (not a copy of it).
        ours = all(
            isinstance(p, np.ndarray) and p.flags.c_contiguous and p.flags.writeable for p in past
        )
        if ours and rows == have and need <= capacity:
            order = buffer_rows(source, rows_per_source)
            moved = np.flatnonzero(order != source)
            width = int(lengths[moved].max()) if len(moved) else 0
            if width:
                into, parents = order[moved], source[moved]
                if np.intersect1d(into, parents).size:  # a row read is written: copy first
                    for b in buffers:
                        b[into, :, :width] = b[parents, :, :width]
                else:  # row by row, without numpy's copy of every row read (~0.5 ms of 2)
                    pairs = list(zip(into.tolist(), parents.tolist(), strict=True))
                    for b in buffers:
                        for row, parent in pairs:
                            b[row, :, :width] = b[parent, :, :width]
            if np.array_equal(order, np.arange(rows)):
                return buffers, None
            self.keep_order(buffers[0], order)
            return buffers, order
        capacity = -(-need // CACHE_CHUNK) * CACHE_CHUNK
        width = int(lengths.max()) if rows else 0
        placed = []
        for b in buffers:
            new = np.empty((rows, b.shape[1], capacity, b.shape[3]), dtype=b.dtype)
            if width:
                new[:, :, :width] = b[source, :, :width]
            placed.append(new)
        return placed, None

    def keep_order(self, buffer: np.ndarray, order: np.ndarray) -> None:
        """Remember that the buffers whose first is ``buffer`` hold row r in row ``order[r]``,
        for as long as they live: by the buffers, not by thread, so that whichever thread steps
        them next reads them right."""
        key, orders = id(buffer), self._orders
        orders[key] = (weakref.ref(buffer, lambda _: orders.pop(key, None)), order)

    def run_bound(
        self, feed: dict[str, Tensor]
    ) -> tuple[np.ndarray, np.ndarray, list[ort.OrtValue]]:
        """The decoder through an IO binding: the top-k outputs come back to the host, the grown
        caches stay on the decoder's device for the next step; in place, each layer's present is
        bound to its past's memory, so the kernel writes the new positions into those buffers,
        and the top-k are written into arrays bound once per shape (then copied out: 0.07 ms of
        ONNX Runtime's Python wrappers per step less at batch 1 than asking for every output).

        The binding is kept between steps (one per thread) and an input is bound again only when
        ``feed`` gives another object for it than the last step did: the cross keys/values, the
        source mask and, in place, the cache buffers stay the same between joins; binding them at
        every step cost 0.05-0.1 ms of a ~1.5 ms int8 step at batch 1 (2 vCPUs). What is bound
        stays alive with the binding, until ``release``."""
        state = self._bindings
        topk, caches = self.decoder_outputs[:2], self.decoder_outputs[2:]
        if not hasattr(state, "binding"):
            state.binding, state.bound = self.decoder.io_binding(), {}
            for name in self.decoder_outputs:  # bound again by name later, in this order
                state.binding.bind_output(name, "cpu")
        binding, bound = state.binding, state.bound
        for name, tensor in feed.items():
            # An array the binding would see only as a copy is bound afresh at every step.
            aliased = not isinstance(tensor, np.ndarray) or tensor.flags.c_contiguous
            if name not in bound or bound[name][0] is not tensor or not aliased:
                value = as_value(tensor)
                binding.bind_ortvalue_input(name, value)
                bound[name] = (tensor, value)
                if self.in_place and name.startswith("past_"):
                    binding.bind_ortvalue_output(name.replace("past", "present", 1), value)
        if self.in_place:  # the caches are the inputs' buffers: only the top-k to fetch
            shape = (len(feed["input_ids"]), int(np.asarray(feed["top_k"])[0]))
            arrays: tuple[np.ndarray, np.ndarray] | None = getattr(state, "topk", None)
            if arrays is None or arrays[0].shape != shape:
                arrays = state.topk = (np.empty(shape, np.float32), np.empty(shape, np.int64))
                for name, array in zip(topk, list[np.ndarray](arrays), strict=True):
                    binding.bind_output(name, "cpu", 0, array.dtype, array.shape, array.ctypes.data)
            self.decoder.run_with_iobinding(binding)
            return arrays[0].copy(), arrays[1].copy(), []
        for name in topk:  # allocated by the run, a new pair each step
            binding.bind_output(name, "cpu")
        for name in caches:
            binding.bind_output(name, self.device)
        self.decoder.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return outputs[0].numpy(), outputs[1].numpy(), list(outputs[2:])


def buffer_rows(source: np.ndarray, rows_per_source: int) -> np.ndarray:
    """The buffer row of each row, given the buffer row ``source`` holds its past: the first row
    to continue a buffer row takes it, the others take the rows no one continues, among the
    ``rows_per_source`` rows of their own source, in order (their sources' cross keys/values are
    read by row). Row order where a row continues a past outside its source's rows (none does
    in a search: a sentence's beams continue its own), or where each source has one row."""
    rows = len(source)
    order = np.arange(rows)
    if rows_per_source <= 1 or np.any(source // rows_per_source != order // rows_per_source):
        return order
    first = np.zeros(rows, dtype=bool)
    first[np.unique(source, return_index=True)[1]] = True
    free = np.ones(rows, dtype=bool)
    free[source] = False
    # Per source, as many rows continue a past another row took as there are rows no one
    # continues; both ascending, so the k-th of each pair up within the same source.
    order[first] = source[first]
    order[~first] = np.flatnonzero(free)
    return order


def in_rows(array: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``array``'s row r moved to row ``order[r]``."""
    moved = np.empty_like(array)
    moved[order] = array
    return moved
