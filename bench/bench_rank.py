"""Benchmark the ranker: all K(K-1) pairs in one batch vs one pair at a time; training pairs/s.

Scores the same K candidates (simulated pushes for one video) both ways in the same run and
checks that both give the same win matrix before reporting times. Knockout mode (K-1 matches in
ceil(log2 K) batches) is timed too. Training speed is measured by a short real training run.

    python -m bench.bench_rank                         # K=8, default backbone (all-MiniLM-L6-v2)
    python -m bench.bench_rank --model runs/ranker     # a trained ranker
    python -m bench.bench_rank --k 16 --repeats 50 --train-pairs 512

Numeric modes: the all-pairs batch is timed in fp32, bf16 (where the CPU has bf16 units) and
int8 dynamic quantisation, and each mode's chosen candidate is compared with fp32's on
`--agreement-sets` candidate sets (simulated pushes of one video each, with its caption when the
model uses captions): a faster mode is only worth having if it picks what fp32 picks.

Targets (issue #5): all-pairs batch >= 4x faster than one pair at a time; p50 latency for K=8
on 2 CPU cores <= 150 ms with the default backbone.

Listwise (issue #17), `--listwise`: the one-pass listwise head against the all-pairs batch and one
pair at a time, same run, K = 2, 4, 8, 16 (`--ks`), fp32 at `--threads` threads; a K=16 request of
long texts against a typical K=8 one (the token budget); with a trained `--listwise-model`, how
often a random permutation of K=8 candidates changes the chosen one. About a minute on 2 idle
cores:

    python -m bench.bench_rank --listwise                                  # fresh heads
    python -m bench.bench_rank --listwise --listwise-model runs/lw --model runs/ranker
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm


def candidate_texts(k: int, seed: int = 0) -> list[str]:
    """K distinct simulated push texts, those of the most-pushed video first."""
    from pushgen.data.simulator import SimConfig, simulate

    pushes = simulate(SimConfig(n_videos=max(20, k), seed=seed)).pushes
    top = pushes["video_id"].value_counts().index[0]
    ordered = pd.concat([pushes[pushes["video_id"] == top], pushes[pushes["video_id"] != top]])
    return ordered["text"].drop_duplicates().head(k).tolist()


def default_ranker_dir(scratch: Path, use_caption: bool = False) -> Path:
    """The default backbone with a fresh pairwise head: the latency of a trained ranker."""
    from pushgen.ranker.inputs import RankerSettings
    from pushgen.ranker.model import load_encoder

    model, tokenizer = load_encoder(None, num_labels=1)
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    RankerSettings("pairwise", 64, use_caption, "default").save(scratch)
    return scratch


def candidate_sets(n_sets: int, k: int, seed: int = 1) -> list[tuple[list[str], str]]:
    """(K distinct simulated push texts, caption) for `n_sets` videos with at least K pushes."""
    from pushgen.data.caption import TextCaptioner
    from pushgen.data.simulator import SimConfig, simulate

    sim = simulate(SimConfig(n_videos=max(40, 4 * n_sets), pushes_per_video=k + 4, seed=seed))
    captions = TextCaptioner().caption_videos(sim.videos).set_index("video_id")["caption"]
    sets = []
    for video_id, group in sim.pushes.groupby("video_id"):
        texts = group["text"].drop_duplicates().head(k).tolist()
        if len(texts) == k:
            sets.append((texts, str(captions[video_id])))
        if len(sets) == n_sets:
            break
    return sets


def mode_agreement(rankers: dict, sets: list[tuple[list[str], str]]) -> dict[str, dict]:
    """Per mode: share of sets where it picks fp32's candidate, and max |W - W_fp32|."""
    ref = [rankers["float32"].win_matrix(t, c) for t, c in sets]
    ref_pick = [aggregate_pick(w) for w in ref]
    out = {}
    for name, ranker in rankers.items():
        wins = [ranker.win_matrix(t, c) for t, c in sets]
        out[name] = {
            "same_choice": float(
                np.mean([aggregate_pick(w) == p for w, p in zip(wins, ref_pick, strict=True)])
            ),
            "max_abs_diff": float(max(np.abs(w - r).max() for w, r in zip(wins, ref, strict=True))),
        }
    return out


def aggregate_pick(win: np.ndarray) -> int:
    from pushgen.ranker.aggregate import aggregate

    return aggregate(win, "copeland").chosen


def time_calls(fn, repeats: int, desc: str) -> list[float]:
    """Wall times (s) of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in tqdm(range(repeats), desc=desc, disable=None, leave=False):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def one_pair_at_a_time(ranker, texts: list[str], caption: str | None = None) -> np.ndarray:
    """The naive baseline: K(K-1) forward passes of one pair each."""
    k = len(texts)
    raw = np.full((k, k), 0.5)
    for i in range(k):
        for j in range(k):
            if i != j:
                raw[i, j] = ranker.score_pairs([texts[i]], [texts[j]], caption)[0]
    return (raw + 1 - raw.T) / 2


def training_speed(n_pairs: int, seed: int = 0) -> dict:
    """Pairs/s of a short real training run of the default backbone on simulated A/B pairs."""
    from pushgen.data.simulator import SimConfig, simulate
    from pushgen.ranker.config import RankerTrainConfig
    from pushgen.ranker.pairs import build_pairs
    from pushgen.ranker.train import train_ranker

    sim = simulate(SimConfig(n_videos=max(50, n_pairs), seed=seed))
    pairs = build_pairs(sim.ab_tests).head(n_pairs)
    with tempfile.TemporaryDirectory() as out:
        m = train_ranker(pairs, None, out, RankerTrainConfig(epochs=1, batch_size=32, device="cpu"))
    return {
        "pairs": len(pairs),
        "examples_per_s": m["train_examples_per_s"],
        "runtime_s": m["train_runtime_s"],
    }


def default_listwise_dir(scratch: Path) -> Path:
    """The default backbone with a fresh listwise head: the latency of a trained one."""
    from pushgen.ranker.inputs import RankerSettings
    from pushgen.ranker.listwise import ListwiseSettings, build_listwise_model

    model, tokenizer = build_listwise_model(None)
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    RankerSettings("pairwise", 64, False, "default", head="listwise").save(scratch)
    ListwiseSettings().save(scratch)
    return scratch


def order_flip_rate(ranker, n_sets: int, k: int = 8, seed: int = 0) -> dict:
    """Share of K-candidate sets whose chosen candidate changes when the order is permuted
    (one random permutation per set), and the largest score difference seen."""
    sets = candidate_sets(n_sets, k, seed=seed + 1)
    rng = np.random.default_rng(seed)
    flips, worst = 0, 0.0
    for texts, caption in sets:
        order = rng.permutation(k)
        base = ranker.scores(texts, caption)
        perm = ranker.scores([texts[i] for i in order], caption)
        flips += int(order[int(np.argmax(perm))] != int(np.argmax(base)))
        worst = max(worst, float(np.abs(perm - base[order]).max()))
    return {"sets": len(sets), "flip_rate": flips / max(len(sets), 1), "max_score_diff": worst}


def listwise_bench(args: argparse.Namespace, console: Console) -> None:
    """The listwise table: one pass vs all-pairs batch vs one pair at a time, per K."""
    import torch

    from pushgen.ranker.select import PairwiseRanker

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as s1, tempfile.TemporaryDirectory() as s2:
        lw_dir = (
            Path(args.listwise_model) if args.listwise_model else default_listwise_dir(Path(s1))
        )
        pw_dir = Path(args.model) if args.model else default_ranker_dir(Path(s2))
        listwise = PairwiseRanker.from_pretrained(lw_dir, "cpu", "float32")
        pairwise = PairwiseRanker.from_pretrained(pw_dir, "cpu", "float32")
    cap = candidate_sets(1, 8)[0][1] if listwise.settings.use_caption else None
    table = Table(
        title=f"listwise one pass vs pairwise, fp32, torch threads={torch.get_num_threads()}, "
        f"listwise {'trained' if args.listwise_model else 'fresh head'} "
        f"({listwise.listwise.positions} positions, {listwise.listwise.permutations} order(s))"
    )
    cols = (
        "K",
        "listwise tokens",
        "listwise p50 ms",
        "all-pairs p50 ms",
        "one-at-a-time p50 ms",
        "all-pairs / listwise",
        "one-at-a-time / listwise",
    )
    for col in cols:
        table.add_column(col, justify="right")
    p50 = statistics.median
    typical: dict[int, float] = {}
    figures: dict = {
        "threads": torch.get_num_threads(),
        "trained": bool(args.listwise_model),
        "positions": listwise.listwise.positions,
        "rows": [],
    }
    for k in args.ks:
        texts = candidate_texts(k)
        enc = encode_sets_for(listwise, texts, cap)
        lw = time_calls(
            lambda t=texts: listwise.win_matrix(t, cap), args.repeats, f"listwise K={k}"
        )
        few = max(3, args.repeats // (2 if k <= 8 else 4))
        pw = time_calls(lambda t=texts: pairwise.win_matrix(t, cap), few, f"all pairs K={k}")
        naive = time_calls(
            lambda t=texts: one_pair_at_a_time(pairwise, t, cap), args.naive_repeats, f"naive K={k}"
        )
        typical[k] = p50(lw)
        figures["rows"].append(
            {
                "k": k,
                "tokens": enc,
                "listwise_ms": p50(lw) * 1e3,
                "all_pairs_ms": p50(pw) * 1e3,
                "one_at_a_time_ms": p50(naive) * 1e3,
            }
        )
        table.add_row(
            str(k),
            str(enc),
            f"{p50(lw) * 1e3:.1f}",
            f"{p50(pw) * 1e3:.1f}",
            f"{p50(naive) * 1e3:.1f}",
            f"{p50(pw) / p50(lw):.1f}x",
            f"{p50(naive) / p50(lw):.1f}x",
        )
    console.print(table)
    # the token budget: K=16 candidates of ~10,000 characters each vs typical requests
    long_texts = [f"{t} " * 200 for t in candidate_texts(16)]
    long = p50(time_calls(lambda: listwise.win_matrix(long_texts, cap), args.repeats, "long K=16"))
    for k in (8, 16):
        if k not in typical:
            texts = candidate_texts(k)
            typical[k] = p50(time_calls(lambda t=texts: listwise.win_matrix(t, cap), 5, f"K={k}"))
    console.print(
        f"token budget: K=16 texts of {len(long_texts[0]):,} chars each: p50 {long * 1e3:.1f} ms "
        f"= {long / typical[16]:.1f}x a typical K=16 request ({typical[16] * 1e3:.1f} ms), "
        f"{long / typical[8]:.1f}x a typical K=8 one ({typical[8] * 1e3:.1f} ms); target <= 5x"
    )
    figures["token_budget"] = {
        "chars_per_text": len(long_texts[0]),
        "long_k16_ms": long * 1e3,
        "typical_k16_ms": typical[16] * 1e3,
        "typical_k8_ms": typical[8] * 1e3,
    }
    if args.listwise_model and args.order_sets:
        flip = order_flip_rate(listwise, args.order_sets)
        figures["order"] = flip
        console.print(
            f"order invariance: chosen candidate changed on {flip['flip_rate']:.1%} of "
            f"{flip['sets']} K=8 sets under a random permutation (target <= 2%); "
            f"max |score difference| {flip['max_score_diff']:.2e}"
        )
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(figures, indent=2))


def encode_sets_for(ranker, texts: list[str], caption: str | None) -> int:
    """Tokens in the listwise ranker's one sequence for `texts`."""
    from pushgen.ranker.listwise import encode_sets

    enc = encode_sets(ranker.tokenizer, [(texts, caption)], ranker.listwise)
    return int(enc["attention_mask"].sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="trained ranker directory (default: default backbone, fresh head)"
    )
    parser.add_argument("--k", type=int, default=8, help="candidates per request")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per mode")
    parser.add_argument(
        "--naive-repeats", type=int, default=5, help="timed calls of the naive mode"
    )
    parser.add_argument(
        "--train-pairs", type=int, default=128, help="pairs in the training-speed run (0: skip)"
    )
    parser.add_argument(
        "--agreement-sets", type=int, default=40, help="candidate sets for the dtype agreement"
    )
    parser.add_argument(
        "--caption",
        action="store_true",
        help="default backbone: time it as a caption-conditioned ranker (pairs carry a caption)",
    )
    parser.add_argument(
        "--listwise", action="store_true", help="the listwise table only (one pass vs pairwise)"
    )
    parser.add_argument("--listwise-model", help="trained listwise ranker (default: fresh head)")
    parser.add_argument(
        "--ks",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[2, 4, 8, 16],
        help="listwise: candidate counts to time",
    )
    parser.add_argument("--threads", type=int, default=2, help="listwise: torch threads")
    parser.add_argument(
        "--order-sets", type=int, default=200, help="listwise: K=8 sets for the order check"
    )
    parser.add_argument("--json", dest="json_out", help="listwise: write the figures here")
    args = parser.parse_args(argv)
    if args.listwise:
        listwise_bench(args, Console(width=160))
        return

    import torch

    from pushgen.core.models import has_bf16_units
    from pushgen.ranker.select import PairwiseRanker

    console = Console()
    texts = candidate_texts(args.k)
    modes = ["float32", *(["bfloat16"] if has_bf16_units("cpu") else []), "int8"]
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = (
            Path(args.model) if args.model else default_ranker_dir(Path(scratch), args.caption)
        )
        rankers = {m: PairwiseRanker.from_pretrained(model_dir, "cpu", m) for m in modes}
    ranker = rankers["float32"]
    # the caption of a simulated video (max_length truncates what does not fit)
    caption = candidate_sets(1, args.k)[0][1] if ranker.settings.use_caption else None

    batched = ranker.win_matrix(texts, caption)
    naive = one_pair_at_a_time(ranker, texts, caption)
    # Same answer both ways (padding differs, so allow float noise), or the timing means nothing.
    np.testing.assert_allclose(batched, naive, atol=1e-4)

    runs = {
        f"all {args.k * (args.k - 1)} pairs, one batch, float32": time_calls(
            lambda: ranker.win_matrix(texts, caption), args.repeats, "batched"
        ),
        f"knockout, {args.k - 1} matches": time_calls(
            lambda: ranker.rank(texts, caption, method="knockout"), args.repeats, "knockout"
        ),
        **{
            f"all pairs, one batch, {m}": time_calls(
                lambda r=r: r.win_matrix(texts, caption), args.repeats, m
            )
            for m, r in rankers.items()
            if m != "float32"
        },
        "one pair at a time (naive)": time_calls(
            lambda: one_pair_at_a_time(ranker, texts, caption), args.naive_repeats, "naive"
        ),
    }
    naive_p50 = statistics.median(runs["one pair at a time (naive)"])
    table = Table(
        title=f"ranker latency, K={args.k}, caption {'on' if caption else 'off'}, "
        f"torch threads={torch.get_num_threads()}"
    )
    for col in ("mode", "p50 ms", "p90 ms", "speed-up vs naive"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for name, times in runs.items():
        p50, p90 = statistics.median(times), float(np.percentile(times, 90))
        table.add_row(name, f"{p50 * 1e3:.1f}", f"{p90 * 1e3:.1f}", f"{naive_p50 / p50:.1f}x")
    console.print(table)
    from bench.record import record

    for name, times in runs.items():
        if name != "one pair at a time (naive)":
            record(
                "rank",
                f"K={args.k}, {name}",
                statistics.median(times),
                naive_p50,
                "one pair at a time",
            )

    if args.agreement_sets:
        sets = candidate_sets(args.agreement_sets, args.k)
        if not ranker.settings.use_caption:
            sets = [(t, "") for t, _ in sets]
        agree = Table(title=f"numeric modes vs fp32 on {len(sets)} candidate sets of K={args.k}")
        for col in ("mode", "same chosen candidate", "max |W - W_fp32|"):
            agree.add_column(col, justify="right" if col != "mode" else "left")
        for name, a in mode_agreement(rankers, sets).items():
            agree.add_row(name, f"{a['same_choice']:.1%}", f"{a['max_abs_diff']:.4f}")
        console.print(agree)

    if args.train_pairs:
        speed = training_speed(args.train_pairs)
        console.print(
            f"training: {speed['pairs']} pairs x 2 orders in {speed['runtime_s']:.1f} s -> "
            f"{speed['examples_per_s']:.1f} examples/s ({speed['examples_per_s'] / 2:.1f} pairs/s)"
        )


if __name__ == "__main__":
    main()
