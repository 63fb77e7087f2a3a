"""The CLI starts without torch: `pushgen --help` and the light commands must not pay for it.

Torch-only code (trainers, model heads) lives in modules that import torch at the top and are
imported only where a command trains or loads a model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "code",
    [
        "import pushgen.cli.main",
        "import pushgen.cli.main; pushgen.cli.main.build_parser()",  # what `pushgen --help` imports
    ],
)
def test_cli_does_not_import_torch(code: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    check = f"{code}; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
