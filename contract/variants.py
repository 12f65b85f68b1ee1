"""The architecture variants every backend must build alike: the feed-forward activations.

One table, read by the three places that build a feed-forward layer: the PyTorch model
(``model/transformer.py``), the fused ONNX graphs (``export/fused.py``) and the Hugging Face export
(``export/hf.py``, which writes the name as ``activation_function``). An entry names how each
backend computes the activation, so this module stays torch- and onnx-free like the rest of
``contract/``; ``tests/export/test_fused.py`` and ``tests/export/test_hf.py`` check every name in
both backends and against Transformers.

The keys are the names a checkpoint's ``ModelConfig.activation`` and a MarianMTModel's
``activation_function`` hold, Transformers' aliases included ("swish" is SiLU). A new activation
is one entry here while each backend computes it with one function and one op (with or without
the input as a factor); the other variant, ``scale_embedding``, is a flag each backend reads from
the config.
"""

from __future__ import annotations

from dataclasses import dataclass

MS_DOMAIN = "com.microsoft"  # ONNX Runtime's contrib operators


@dataclass(frozen=True)
class Activation:
    """How one activation is computed by each backend."""

    torch: str  # the ``torch.nn.functional`` function, called with its defaults
    onnx: str  # the ONNX operator applied to the pre-activation ``x``
    onnx_domain: str = ""  # "" (standard ONNX) or ``MS_DOMAIN``
    times_input: bool = False  # the result is ``x * op(x)`` rather than ``op(x)``


RELU = Activation(torch="relu", onnx="Relu")
SILU = Activation(torch="silu", onnx="Sigmoid", times_input=True)  # x * sigmoid(x)
# The exact (erf) form in both: torch's default and ONNX Runtime's Gelu kernel.
GELU = Activation(torch="gelu", onnx="Gelu", onnx_domain=MS_DOMAIN)

# Every accepted name, as Transformers' ACT2FN spells it.
ACTIVATIONS: dict[str, Activation] = {"relu": RELU, "swish": SILU, "silu": SILU, "gelu": GELU}
