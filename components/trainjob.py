"""SFT and reward training on several GPUs: the pipeline step hands the work to a Kubeflow Trainer
TrainJob and reads the result back from the artifact store (not a component itself; `sft` and
`reward` call it above one GPU).

The step (`train_in_trainjob`, in the KFP pod, CPU only):
    inputs -> store `trainjobs/<job>/inputs/`, settings -> `trainjobs/<job>/params.json`
    -> TrainJob on `torch-distributed` (pushgen.core.trainjob.run_trainjob: create, logs, wait)
    -> outputs from `trainjobs/<job>/outputs/` into the step's output artifacts.

Each TrainJob process (`torchrun --module components.trainjob generator|ranker --store-uri U
--job J`): every rank fetches the inputs once, trains its share (DDP), and rank 0 alone writes
the model, the rows set aside and the figures to the store. A job that fails uploads nothing; the
step fails with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pushgen.core.distributed import ranks
from pushgen.core.errors import ConfigError
from pushgen.core.store import ArtifactStore
from pushgen.core.trainjob import STEP_LABEL, TrainJobSettings, run_trainjob

KINDS = ("generator", "ranker")
PREFIX = "trainjobs"


def job_name(kind: str) -> str:
    """A fresh TrainJob name (DNS-1035, well under 63 characters)."""
    return f"pushgen-{'sft' if kind == 'generator' else 'reward'}-{uuid.uuid4().hex[:10]}"


def entry(kind: str, store_uri: str, name: str) -> list[str]:
    """The module and arguments each TrainJob process runs (after `torchrun --module`)."""
    return ["components.trainjob", kind, "--store-uri", store_uri, "--job", name]


def train_in_trainjob(
    kind: str,
    settings: TrainJobSettings,
    store_uri: str,
    inputs: dict[str, str],
    params: dict[str, Any],
    outputs: dict[str, str],
    client: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Stage `inputs` ({name: local file}) and `params`, run the TrainJob, fetch `outputs`
    ({"model": dir, "rejected": file}); returns the figures the job logged."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not store_uri:
        raise ConfigError("a TrainJob step needs store_uri: its inputs and outputs pass through it")
    store = ArtifactStore.from_uri(store_uri)
    name = job_name(kind)
    base = f"{PREFIX}/{name}"
    for key, path in inputs.items():
        store.put_file(path, f"{base}/inputs/{key}")
    store.put_json(params, f"{base}/params.json")
    # the job's pods reach the same store: its endpoint travels with them (credentials do not:
    # the pods get them as the step's do, from workload identity or the runtime's pod template)
    endpoint = os.environ.get("PUSHGEN_S3_ENDPOINT")
    if endpoint:
        settings = dataclasses.replace(
            settings, env={**settings.env, "PUSHGEN_S3_ENDPOINT": endpoint}
        )
    if client is None:
        from kubeflow.common.types import KubernetesBackendConfig
        from kubeflow.trainer import TrainerClient

        client = TrainerClient(KubernetesBackendConfig(namespace=settings.namespace or None))
    run_trainjob(client, settings, name, entry(kind, store_uri, name), {STEP_LABEL: kind}, log=log)
    # the result, read from the store like any other artifact
    store.get_dir(f"{base}/outputs/model", outputs["model"])
    store.get_file(f"{base}/outputs/rejected.parquet", outputs["rejected"])
    return store.get_json(f"{base}/outputs/figures.json")


# --- inside the TrainJob: every rank -----------------------------------------------------------
def _train_generator(inputs: Path, params: dict, out: Path) -> dict[str, float]:
    from pushgen.generator.config import GeneratorTrainConfig
    from pushgen.generator.sft import train_from_files

    cfg = GeneratorTrainConfig(**params)
    rejected = out.parent / "rejected.parquet"
    return train_from_files(inputs / "labelled", inputs / "captions", out, rejected, cfg)


def recipe_from_params(params: dict) -> Any:
    """A `RankerRecipeConfig` from its `dataclasses.asdict` form."""
    from pushgen.ranker.config import RankerTrainConfig
    from pushgen.ranker.pairs import PairConfig, StorySplitConfig
    from pushgen.ranker.recipe import RankerRecipeConfig

    parts = {"pairs": PairConfig, "split": StorySplitConfig, "train": RankerTrainConfig}
    nested = {k: cls(**params[k]) for k, cls in parts.items()}
    return RankerRecipeConfig(**nested, **{k: v for k, v in params.items() if k not in parts})


def _train_ranker(inputs: Path, params: dict, out: Path) -> dict[str, float]:
    from pushgen.data.contracts import write_table
    from pushgen.ranker.recipe import (
        headline_figures,
        read_ab_tests,
        set_aside_table,
        train_from_ab_tests,
    )

    cfg = recipe_from_params(params)
    captions = inputs / "captions" if (inputs / "captions").exists() else None
    result = train_from_ab_tests(read_ab_tests(inputs / "ab_tests", captions=captions), out, cfg)
    if not ranks().is_main:
        return {}
    write_table(set_aside_table(out), out.parent / "rejected.parquet")
    return {k: v for k, v in headline_figures(result).items() if v is not None}


def run_in_job(kind: str, store_uri: str, name: str) -> int:
    """One TrainJob process: fetch inputs, train (all ranks), rank 0 uploads the outputs."""
    store = ArtifactStore.from_uri(store_uri)
    base = f"{PREFIX}/{name}"
    with tempfile.TemporaryDirectory(prefix=f"pushgen-{kind}-") as tmp:
        inputs = store.get_dir(f"{base}/inputs", Path(tmp) / "inputs")  # once per rank
        params = store.get_json(f"{base}/params.json")
        out = Path(tmp) / "outputs" / "model"
        out.parent.mkdir(parents=True)
        train = _train_generator if kind == "generator" else _train_ranker
        figures = train(inputs, params, out)
        if ranks().is_main:
            store.put_dir(out, f"{base}/outputs/model")
            store.put_file(out.parent / "rejected.parquet", f"{base}/outputs/rejected.parquet")
            store.put_json(figures, f"{base}/outputs/figures.json")  # last: the job's result
    return 0


def params_of(cfg: Any) -> dict[str, Any]:
    """A training config as the JSON `run_in_job` rebuilds it from."""
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)
    return json.loads(json.dumps(data, default=list))


def main(argv: list[str] | None = None) -> int:
    """`python -m components.trainjob generator|ranker --store-uri U --job J` (under torchrun)."""
    parser = argparse.ArgumentParser(prog="components.trainjob", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--store-uri", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    return run_in_job(args.kind, args.store_uri, args.job)


if __name__ == "__main__":
    raise SystemExit(main())
