"""One line naming the machine a figure was measured on (CPU model, cores, GPU, bf16 units)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """e.g. 'AMD EPYC 7B13, 2 cores, AVX2 (no bf16 units), no GPU'."""
    parts = [cpu_model(), f"{os.cpu_count()} cores"]
    try:
        import torch

        from pushgen.core.models import has_bf16_units

        parts.append("bf16 units" if has_bf16_units("cpu") else "no bf16 units")
        if torch.cuda.is_available():
            parts.append(f"GPU {torch.cuda.get_device_name(0)}")
        else:
            parts.append("no GPU")
    except ImportError:  # torch absent: CPU facts only
        pass
    return ", ".join(parts)
