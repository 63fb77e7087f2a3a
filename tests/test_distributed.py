"""Training under torchrun, on CPU (gloo), with the tiny Llama: N processes train as one.

- 2 processes with 4 samples each per step give the loss curve and the adapter of 1 process with
  8 per step, same seed (the confidence weights differ per video, so a loss averaged per rank
  instead of over the global batch would differ: by 1e-4 to 3e-2 on this data with seed 0, measured);
- only rank 0 writes (an audit hook in each rank, tests/rank_audit.py);
- (slow) a rank killed mid-run fails the run, naming the rank, and leaves no release.

Tolerance: float32 sums in another order; losses within 2e-5, adapter weights within 1e-5
(measured: 4.8e-7 and 2.1e-6).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pushgen.core.distributed import PARTIAL_SUFFIX, Ranks, rank_seed, staged_output
from pushgen.generator.config import GeneratorTrainConfig
from pushgen.generator.sft import train_generator

REPO = Path(__file__).resolve().parent.parent
PUSHES = {
    "Humor": "Hilarious! The cat steals the show",
    "Practical": "3 tips to cook pasta faster today",
    "Suspense": "You won't believe what happens next",
}
LOSS_TOL, WEIGHT_TOL = 2e-5, 1e-5


def _data(path: Path) -> Path:
    rows = [
        {
            "video_id": f"v{v}",
            "caption": f"video {v}: a cat and a pot of pasta",
            "category": cat,
            "text": text,
            "confidence": 0.2 + 0.1 * v,  # unequal weights: the global normalisation matters
        }
        for v in range(8)
        for cat, text in PUSHES.items()
    ]
    pd.DataFrame(rows).to_parquet(path)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _train_args(data: Path, base: Path, out: Path, batch: int, steps: int = 6) -> list[str]:
    return [
        "train-generator",
        *("--data", str(data), "--base-model", str(base), "--out", str(out)),
        *("--max-steps", str(steps), "--batch-size", str(batch), "--lr", "0.05"),
        *("--lora-dropout", "0", "--val-fraction", "0", "--device", "cpu", "--bf16", "off"),
        *("--samples", "0", "--seed", "3"),
    ]


def _torchrun(nproc: int, audit: Path, watched: Path, args: list[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", str(nproc)),
        *(str(REPO / "tests" / "rank_audit.py"), str(audit), str(watched), "--", *args),
    ]


def _adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


def test_two_processes_train_as_one_and_only_rank_0_writes(tiny_causal_lm_dir, tmp_path):
    data = _data(tmp_path / "sft.parquet")
    one, two = tmp_path / "one" / "generator", tmp_path / "two" / "generator"
    started = time.perf_counter()
    # one process, in this one (no interpreter start): the settings the CLI flags below give
    train_generator(
        pd.read_parquet(data),
        one,
        GeneratorTrainConfig(
            base_model=str(tiny_causal_lm_dir),
            max_steps=6,
            batch_size=8,
            learning_rate=0.05,
            lora_dropout=0.0,
            val_fraction=0.0,
            device="cpu",
            bf16="off",
            seed=3,
            progress=False,
        ),
    )
    run = subprocess.run(
        _torchrun(
            2,
            tmp_path / "audit",
            two.parent,
            _train_args(data, tiny_causal_lm_dir, two, batch=4),
        ),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"1 + 2 processes: {time.perf_counter() - started:.1f} s")  # the issue asks < 1 min

    # the same loss curve, step for step, and the same adapter
    curve = {
        n: [e["loss"] for e in json.loads((d / "metrics.json").read_text())["train_loss"]]
        for n, d in (("one", one), ("two", two))
    }
    assert len(curve["one"]) == len(curve["two"]) == 6
    assert curve["one"] == pytest.approx(curve["two"], abs=LOSS_TOL)
    assert json.loads((two / "metrics.json").read_text())["processes"] == 2
    a, b = _adapter(one), _adapter(two)
    assert a.keys() == b.keys() and a
    gaps = {name: (a[name] - b[name]).abs().max().item() for name in a}
    loss_gap = max(abs(x - y) for x, y in zip(curve["one"], curve["two"], strict=True))
    print(f"largest gaps: loss {loss_gap:.1e}, adapter weight {max(gaps.values()):.1e}")
    assert max(gaps.values()) <= WEIGHT_TOL, gaps
    fresh_b = [n for n in a if "lora_B" in n]
    assert any(a[n].abs().max().item() > 1e-3 for n in fresh_b)  # training moved the adapter

    # only rank 0 wrote: rank 1 touched nothing under the output's parent
    audits = {r: json.loads((tmp_path / "audit" / f"rank-{r}.json").read_text()) for r in (0, 1)}
    assert audits[1]["touched"] == []
    rank0 = "\n".join(audits[0]["touched"])
    assert f"{two}{PARTIAL_SUFFIX}/metrics.json" in rank0  # written in the stage, then published
    assert f"os.rename {two}{PARTIAL_SUFFIX}" in rank0
    assert not Path(f"{two}{PARTIAL_SUFFIX}").exists()


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_and_leaves_no_release(tiny_causal_lm_dir, tmp_path):
    data = _data(tmp_path / "sft.parquet")
    out, audit = tmp_path / "run" / "generator", tmp_path / "audit"
    proc = subprocess.Popen(
        _torchrun(2, audit, out.parent, _train_args(data, tiny_causal_lm_dir, out, 4, 100000)),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not (audit / "pid-1").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(8)  # into the training loop (model, data and process group set up)
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        os.kill(int((audit / "pid-1").read_text()), signal.SIGKILL)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    # torchrun's summary names the rank and the signal
    assert "local_rank: 1" in output and "SIGKILL" in output, output[-3000:]
    assert not out.exists()  # no release, not even a half-written one


@pytest.mark.slow
def test_the_ranker_trains_under_torchrun_as_in_one_process(tiny_encoder_dir, sim_dir, tmp_path):
    """train-ranker, 1 process x 8 pairs vs 2 x 4, two epochs, dropout off (it draws per rank).

    Tolerances: validation AUC within 1e-3 and each weight within 5e-4. AdamW turns the float noise
    in gradients that are exactly zero in theory (attention key biases: softmax ignores a shift
    shared by all keys) into steps of up to the learning rate, 1e-3: measured 3.7e-4 there, 1.2e-4
    elsewhere. 16 pairs in both orders: 32 examples, whole batches in both runs."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    enc = tmp_path / "encoder"
    shutil.copytree(tiny_encoder_dir, enc)
    config = AutoConfig.from_pretrained(enc)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(enc)
    outs = {n: tmp_path / n / "ranker" for n in ("one", "two")}

    def args(out: Path, batch: int) -> list[str]:
        return [
            *("train-ranker", "--ab-tests", str(sim_dir / "ab_tests.parquet"), "--out", str(out)),
            *("--backbone", str(enc), "--max-train-pairs", "16", "--epochs", "2", "--lr", "1e-3"),
            *("--batch-size", str(batch), "--device", "cpu", "--seed", "3", "--max-p-value", "1"),
        ]

    subprocess.run(
        [sys.executable, "-m", "pushgen", *args(outs["one"], 8)],
        env=_env(),
        check=True,
        capture_output=True,
    )
    audit = tmp_path / "audit"
    run = subprocess.run(
        _torchrun(2, audit, outs["two"].parent, args(outs["two"], 4)),
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = {n: json.loads((d / "train_metrics.json").read_text()) for n, d in outs.items()}
    assert metrics["one"]["val"]["auc"] == pytest.approx(metrics["two"]["val"]["auc"], abs=1e-3)
    for name in ("model.safetensors", "pair_head.safetensors"):
        a, b = (load_file(outs[n] / name) for n in ("one", "two"))
        assert max((a[k] - b[k]).abs().max().item() for k in a) <= 5e-4, name
    assert json.loads((audit / "rank-1.json").read_text())["touched"] == []


def test_rank_helpers_and_staging(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rank_seed(7) == 8
    with staged_output(tmp_path / "out") as stage:  # not rank 0: nothing to write
        assert stage is None
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("RANK", "0")
    assert Ranks(0, 2).is_main
    with pytest.raises(RuntimeError), staged_output(tmp_path / "out") as stage:
        (stage / "half.json").write_text("{}")
        raise RuntimeError("training failed")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("earlier")
    with staged_output(tmp_path / "out") as stage:
        (stage / "metrics.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt", "metrics.json"]
