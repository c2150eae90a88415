"""FLOPs of a training step and the dense peak of known devices, for MFU."""

from __future__ import annotations

from typing import Any

#: Dense (no sparsity) peak FLOP/s by device name fragment and matmul arithmetic, from the
#: vendors' data sheets, SXM parts: the highest of each family, so a PCIe or NVL part's MFU
#: is understated, never overstated. ``tf32`` is the tensor-core peak that fp32 matmuls
#: reach where the framework runs them as TensorFloat-32 (JAX's default on a GPU); ``fp32``
#: the CUDA-core peak of true fp32 (PyTorch's default). Each job's peak is the one of the
#: arithmetic it used (:func:`device_peak_flops`), so its MFU cannot exceed 100% by
#: construction of the peak.
DENSE_PEAK = {
    ("H200", "bf16"): 989e12,
    ("H100", "bf16"): 989e12,
    ("A100", "bf16"): 312e12,
    ("H200", "tf32"): 494.7e12,
    ("H100", "tf32"): 494.7e12,
    ("A100", "tf32"): 156e12,
    ("H200", "fp32"): 67e12,
    ("H100", "fp32"): 67e12,
    ("A100", "fp32"): 19.5e12,
}


def device_peak_flops(device_name: str, precision: str) -> float | None:
    """The dense peak of a known GPU for ``precision`` (``bf16``, ``tf32`` or ``fp32``: the
    arithmetic the matmuls used, see ``FrameworkAdapter.matmul_precision``), or None
    (CPUs: no agreed peak, so no MFU)."""
    for (fragment, prec), peak in DENSE_PEAK.items():
        if fragment in device_name and prec == precision:
            return peak
    return None


def transformer_params(spec: dict[str, Any]) -> dict[str, int]:
    """Parameters of the decoder-only LM the kernels build (Trax TransformerLM layout)."""
    d, ff, layers, vocab = spec["d_model"], spec["d_ff"], spec["n_layers"], spec["vocab"]
    per_layer = (4 * d * d + 4 * d) + (d * ff + ff + ff * d + d) + 2 * (2 * d)
    return {
        "embedding": vocab * d,
        "positional": spec["max_len"] * d,
        "blocks": layers * per_layer,
        "final_norm": 2 * d,
        "output": d * vocab + vocab,
    }


def transformer_flops_per_step(spec: dict[str, Any]) -> float:
    """Training FLOPs per step: 6 per matmul weight per token, plus attention scores.

    The usual estimate (Kaplan et al. 2020; PaLM appendix B): 6·N per token for the
    weights that multiply activations (blocks and output projection, not the embedding
    lookups), plus 12·L·d·T per token for the attention score and value products.
    """
    p = transformer_params(spec)
    matmul_params = p["blocks"] + p["output"]
    tokens = spec["batch"] * spec["seq_len"]
    attention = 12 * spec["n_layers"] * spec["d_model"] * spec["seq_len"]
    return float(tokens * (6 * matmul_params + attention))
