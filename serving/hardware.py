"""Which numeric type a served model runs in, from what the hardware offers.

bf16 halves memory traffic and, on hardware with bf16 matrix units (CUDA GPUs from Ampere on,
Intel CPUs with AMX or AVX512-BF16), runs matmuls 2-3x faster than fp32; without such units a CPU
emulates it slowly, so "auto" only picks it where the units exist.
"""

from __future__ import annotations

from pushgen.errors import ConfigError
from pushgen.models import has_bf16_units

DTYPES = ("auto", "bfloat16", "float32")


def resolve_dtype(dtype: str, device: str) -> str:
    """'bfloat16' or 'float32' for `dtype` in {'auto', 'bfloat16', 'float32'} on `device`."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    return "bfloat16" if has_bf16_units(device) else "float32"
