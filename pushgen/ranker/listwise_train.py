"""Listwise training on whole A/B tests: one sequence per test with all its arms.

Each test (arms matched as for pairs, e.g. the same image) becomes a `ArmGroup`: its distinct
texts, their pooled impressions and clicks, and the labelled, weighted pairs between them, made by
`build_pairs_report` exactly as for the pairwise heads (same p-value cut, labels, weights). Every
epoch shows each test in a fresh random candidate order; a test with more arms than
`max_set_size` is split into overlapping windows of that order. Two losses:

- `pairwise`: the evidence-weighted logistic loss over all labelled arm pairs of the test,
  -w [y log sigmoid(s_i - s_j) + (1 - y) log sigmoid(s_j - s_i)];
- `plackett_luce`: the Plackett-Luce likelihood of the CTR order, with soft labels: the order is
  drawn afresh each time from the arms' Beta posteriors, so a near-tie is a coin flip and a
  clear winner is almost always first.

    groups = ab_test_groups(train_arms, PairConfig(max_p_value=0.1))
    metrics = train_listwise(groups, val_pairs, "runs/ranker-listwise", RankerTrainConfig(head="listwise"))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from pushgen.core.errors import DataContractError
from pushgen.core.models import pick_device
from pushgen.ranker.pairs import PairConfig, build_pairs_report


@dataclass
class ArmGroup:
    """The arms of one A/B test (one matched group) and the labelled pairs between them."""

    texts: list[str]
    caption: str | None
    pv: np.ndarray
    clicks: np.ndarray
    pair_i: np.ndarray  # index of arm a of each labelled pair
    pair_j: np.ndarray  # index of arm b
    label: np.ndarray  # 1: a had the higher CTR (0.5: a kept tie)
    posterior: np.ndarray  # Beta-posterior P(a's CTR > b's)
    weight: np.ndarray  # evidence weight of the pair


def pooled_arms(arms: pd.DataFrame, match_on: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per distinct text of each (test, matched group), impressions and clicks summed;
    `test_id` becomes the group key, so pairs and groups never cross it."""
    keys = ["test_id", *match_on]
    frame = arms.astype({c: str for c in match_on}).fillna({c: "<none>" for c in match_on})
    aggs = {"pv": ("pv", "sum"), "clicks": ("clicks", "sum"), "video_id": ("video_id", "first")}
    if "caption" in frame.columns:
        aggs["caption"] = ("caption", "first")
    pooled = frame.groupby([*keys, "text"], sort=False).agg(**aggs).reset_index()
    group_key = pooled[keys].astype(str).agg("|".join, axis=1)
    pooled["test_id"] = group_key
    pooled["push_id"] = group_key + ":" + pooled.groupby(group_key).cumcount().astype(str)
    return pooled


def ab_test_groups(arms: pd.DataFrame, pair_cfg: PairConfig | None = None) -> list[ArmGroup]:
    """The training groups of `arms`: every (test, matched group) with at least one labelled pair
    under `pair_cfg` (its `match_on` decides which arms share a sequence)."""
    pair_cfg = pair_cfg or PairConfig()
    pooled = pooled_arms(arms, pair_cfg.match_on)
    flat_cfg = replace(pair_cfg, match_on=(), carry=(), carry_test=())
    pairs = build_pairs_report(pooled, flat_cfg).pairs
    if pairs.empty:
        return []
    groups = []
    by_test = dict(tuple(pooled.groupby("test_id", sort=False)))
    for test_id, tp in pairs.groupby("test_id", sort=False):
        rows = by_test[test_id].reset_index(drop=True)
        index = {pid: i for i, pid in enumerate(rows["push_id"])}
        caption = str(rows["caption"].iloc[0]) if "caption" in rows.columns else None
        groups.append(
            ArmGroup(
                texts=rows["text"].astype(str).tolist(),
                caption=caption,
                pv=rows["pv"].to_numpy(float),
                clicks=rows["clicks"].to_numpy(float),
                pair_i=tp["push_id_a"].map(index).to_numpy(int),
                pair_j=tp["push_id_b"].map(index).to_numpy(int),
                label=tp["label"].to_numpy(float),
                posterior=tp["p_a_beats_b"].to_numpy(float),
                weight=tp["weight"].to_numpy(float),
            )
        )
    return groups


def groups_from_pairs(pairs: pd.DataFrame) -> list[ArmGroup]:
    """Groups rebuilt from a pairs table (`build_pairs` output): the texts of each test that
    appear in its pairs. `ab_test_groups` on the arms is preferred: it keeps every arm."""
    groups = []
    for _, tp in pairs.groupby("test_id", sort=False):
        texts = list(dict.fromkeys([*tp["text_a"].astype(str), *tp["text_b"].astype(str)]))
        index = {t: i for i, t in enumerate(texts)}
        pv, clicks = np.zeros(len(texts)), np.zeros(len(texts))
        for side in "ab":
            idx = tp[f"text_{side}"].astype(str).map(index).to_numpy(int)
            pv[idx], clicks[idx] = tp[f"pv_{side}"], tp[f"clicks_{side}"]
        caption = str(tp["caption"].iloc[0]) if "caption" in tp.columns else None
        groups.append(
            ArmGroup(
                texts=texts,
                caption=caption,
                pv=pv,
                clicks=clicks,
                pair_i=tp["text_a"].astype(str).map(index).to_numpy(int),
                pair_j=tp["text_b"].astype(str).map(index).to_numpy(int),
                label=tp["label"].to_numpy(float),
                posterior=tp["p_a_beats_b"].to_numpy(float),
                weight=tp["weight"].to_numpy(float),
            )
        )
    return groups


def set_windows(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A fresh random order of n candidates, cut into windows of at most `size` that overlap by
    half a window when n > size (so arms of one large test still meet each other)."""
    order = rng.permutation(n)
    if n <= size:
        return [order]
    step = max(size // 2, 1)
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return [order[s : s + size] for s in starts]


@dataclass
class SetExample:
    """One training sequence: candidate texts in order, caption, and its supervision."""

    texts: list[str]
    caption: str | None
    pair_i: np.ndarray  # local indices into `texts`
    pair_j: np.ndarray
    target: np.ndarray  # P(i beats j) to fit
    weight: np.ndarray
    pv: np.ndarray
    clicks: np.ndarray


def epoch_examples(
    groups: list[ArmGroup], size: int, label: str, rng: np.random.Generator
) -> list[SetExample]:
    """The sequences of one epoch: every group in a fresh order (windows when it is large),
    keeping the pairs whose two arms share a window."""
    out = []
    for g in groups:
        for window in set_windows(len(g.texts), size, rng):
            local = np.full(len(g.texts), -1)
            local[window] = np.arange(len(window))
            keep = (local[g.pair_i] >= 0) & (local[g.pair_j] >= 0)
            if not keep.any():
                continue
            target = g.posterior if label == "posterior" else g.label
            out.append(
                SetExample(
                    texts=[g.texts[i] for i in window],
                    caption=g.caption,
                    pair_i=local[g.pair_i[keep]],
                    pair_j=local[g.pair_j[keep]],
                    target=target[keep],
                    weight=g.weight[keep],
                    pv=g.pv[window],
                    clicks=g.clicks[window],
                )
            )
    rng.shuffle(out)
    return out


def pairwise_set_loss(scores, batch: list[SetExample], use_weights: bool = True):
    """Evidence-weighted logistic loss over the labelled pairs of every set in the batch,
    divided by the batch's weight sum."""
    rows = np.concatenate([np.full(len(b.pair_i), n) for n, b in enumerate(batch)])
    ii = np.concatenate([b.pair_i for b in batch])
    jj = np.concatenate([b.pair_j for b in batch])
    dev = scores.device
    diff = scores[torch.as_tensor(rows, device=dev), torch.as_tensor(ii, device=dev)]
    diff = diff - scores[torch.as_tensor(rows, device=dev), torch.as_tensor(jj, device=dev)]
    target = torch.as_tensor(np.concatenate([b.target for b in batch]), device=dev).float()
    weight = np.concatenate([b.weight for b in batch]) if use_weights else np.ones(len(ii))
    weight = torch.as_tensor(weight, device=dev).float()
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        diff.float(), target, reduction="none"
    )
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)


def plackett_luce_loss(scores, batch: list[SetExample], rng: np.random.Generator):
    """Plackett-Luce negative log-likelihood of a CTR order drawn from the arms' Beta(1 + clicks,
    1 + pv - clicks) posteriors (soft labels), per ranked position, averaged over the batch."""
    total, count = scores.new_zeros(()), 0
    for n, b in enumerate(batch):
        draw = rng.beta(1.0 + b.clicks, 1.0 + np.maximum(b.pv - b.clicks, 0.0))
        order = torch.as_tensor(np.argsort(-draw), device=scores.device)
        s = scores[n, order].float()
        # log sum_{m >= k} exp(s_m), for every k: a reversed cumulative logsumexp
        tail = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
        total = total + (tail[:-1] - s[:-1]).sum()
        count += len(s) - 1
    return total / max(count, 1)


def _optimizer_and_schedule(model, cfg, total_steps: int):
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        groups.setdefault((name.startswith("score."), param.ndim >= 2), []).append(param)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": p,
                "lr": head_lr if is_head else cfg.learning_rate,
                "weight_decay": cfg.weight_decay if decays else 0.0,
            }
            for (is_head, decays), p in groups.items()
        ]
    )
    warmup = max(1, int(cfg.warmup_ratio * total_steps))

    def factor(step: int) -> float:  # linear warm-up, then linear decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit_listwise(model, tokenizer, groups: list[ArmGroup], cfg, listwise) -> dict:
    """The training loop: fresh orders each epoch, one forward pass per batch of tests."""
    import time

    from pushgen.ranker.listwise import encode_sets

    device = pick_device(cfg.device)
    model.to(device).train()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    per_epoch = len(epoch_examples(groups, cfg.max_set_size, cfg.label, np.random.default_rng(0)))
    steps_per_epoch = math.ceil(per_epoch / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    optimizer, schedule = _optimizer_and_schedule(model, cfg, total)
    losses, step, start, seen = [], 0, time.perf_counter(), 0
    bar = tqdm(total=total, desc="listwise", disable=None)
    while step < total:
        examples = epoch_examples(groups, cfg.max_set_size, cfg.label, rng)
        for b0 in range(0, len(examples), cfg.batch_size):
            batch = examples[b0 : b0 + cfg.batch_size]
            sets = [(b.texts, b.caption if cfg.use_caption else None) for b in batch]
            enc = {k: v.to(device) for k, v in encode_sets(tokenizer, sets, listwise).items()}
            scores = model(**enc, n_candidates=max(len(b.texts) for b in batch))
            if cfg.listwise_loss == "plackett_luce":
                loss = plackett_luce_loss(scores, batch, rng)
            else:
                loss = pairwise_set_loss(scores, batch, cfg.use_weights)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            seen += len(batch)
            step += 1
            bar.update(1)
            if step % cfg.logging_steps == 0:
                bar.write(f"step {step}/{total}: loss {np.mean(losses[-cfg.logging_steps :]):.4f}")
            if step >= total:
                break
    bar.close()
    model.eval()
    runtime = time.perf_counter() - start
    return {
        "train_loss": float(np.mean(losses[-max(1, len(losses) // 5) :])),
        "train_loss_first": float(np.mean(losses[: max(1, len(losses) // 10)])),
        "train_runtime_s": runtime,
        "train_examples": seen,
        "train_examples_per_s": seen / runtime if runtime > 0 else float("nan"),
        "steps": step,
    }


def train_listwise(
    groups: list[ArmGroup],
    pairs_val: pd.DataFrame | None,
    out_dir: str | Path,
    cfg,
) -> dict:
    """Train the listwise head on whole tests, save it to `out_dir` (encoder safetensors, head,
    tokenizer, `ranker_config.json`, `listwise_config.json`) and return its metrics (validation
    pairs scored one pass per held-out test); the recipe writes them to `train_metrics.json`."""
    from pushgen.ranker.inputs import RankerSettings
    from pushgen.ranker.listwise import ListwiseRanker, ListwiseSettings, build_listwise_model

    if not groups:
        raise DataContractError("training: no A/B test with a labelled pair for the listwise head")
    listwise = ListwiseSettings(
        candidate_tokens=cfg.candidate_tokens,
        positions=cfg.positions,
        pool_layers=cfg.pool_layers,
    )
    listwise.check()
    # model: the encoder with a fresh per-candidate scoring layer
    model, tokenizer = build_listwise_model(cfg.backbone, cfg.pool_layers)
    # train: whole tests, fresh orders, the chosen loss
    fit = fit_listwise(model, tokenizer, groups, cfg, listwise)
    # save: safetensors + tokenizer + the settings inference needs
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    settings = RankerSettings(
        "pairwise",
        cfg.max_length,
        cfg.use_caption,
        cfg.backbone or "default",
        head="listwise",
        pool_layers=cfg.pool_layers,
    )
    settings.save(out)
    listwise.save(out)
    metrics = {
        "train_tests": len(groups),
        "train_pairs": int(sum(len(g.pair_i) for g in groups)),
        **fit,
        "config": asdict(cfg),
    }
    if pairs_val is not None and not pairs_val.empty:
        from pushgen.ranker.scoring import score_and_measure

        ranker = ListwiseRanker.from_pretrained(out, device=cfg.device)
        metrics["val"] = score_and_measure(ranker, pairs_val)
    return metrics
