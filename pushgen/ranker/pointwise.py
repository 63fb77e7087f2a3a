"""The ablation: a pointwise CTR regressor on the same backbone, trained on the same arms.

It predicts each text's (standardised, empirical-logit) CTR on its own; two candidates are compared
by their predicted scores. The PushGen paper drops this design because CTR is confounded (author
popularity, video quality): the regressor has to explain between-video differences it cannot see
in the text, while the pairwise model only sees within-test differences where they cancel. The
evaluation measures how much that costs.

    metrics = train_pointwise(train_arms, val_arms, "runs/ranker/pointwise", RankerTrainConfig())
    scores = PointwiseScorer.from_pretrained("runs/ranker/pointwise").score(texts)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pushgen.core.errors import DataContractError, PushgenError
from pushgen.core.models import pick_device
from pushgen.ranker.config import EncodedDataset, RankerTrainConfig
from pushgen.ranker.inputs import RankerSettings
from pushgen.ranker.model import load_encoder
from pushgen.ranker.trainer import run_trainer


def logit_ctr(clicks: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Empirical logit of CTR with half a click of smoothing (finite for 0 and pv clicks)."""
    clicks, pv = np.asarray(clicks, float), np.asarray(pv, float)
    return np.log((clicks + 0.5) / (pv - clicks + 0.5))


def train_pointwise(
    arms_train: pd.DataFrame,
    arms_val: pd.DataFrame | None,
    out_dir: str | Path,
    cfg: RankerTrainConfig | None = None,
) -> dict:
    """Fit a one-output regressor text -> standardised logit CTR on `ab_tests` arms; save it."""
    cfg = cfg or RankerTrainConfig()
    missing = [c for c in ("text", "pv", "clicks") if c not in arms_train.columns]
    if missing or arms_train.empty:
        raise DataContractError(f"pointwise training arms: missing {missing} or no rows")
    if cfg.max_train_pairs and len(arms_train) > 2 * cfg.max_train_pairs:
        arms_train = arms_train.sample(2 * cfg.max_train_pairs, random_state=cfg.seed)

    # data: standardised so the head starts at the right scale (CTR logits sit around -4)
    target = logit_ctr(arms_train["clicks"], arms_train["pv"])
    mean, std = float(target.mean()), float(target.std() or 1.0)
    model, tokenizer = load_encoder(cfg.backbone, num_labels=1)
    enc = tokenizer(
        arms_train["text"].astype(str).tolist(), truncation=True, max_length=cfg.max_length
    )
    dataset = EncodedDataset(dict(enc), (target - mean) / std, np.ones(len(target)))
    # train: weighted MSE through the same Trainer as the pairwise model
    result = run_trainer(model, tokenizer, dataset, cfg, loss="mse")
    # save
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    RankerSettings("pointwise", cfg.max_length, False, cfg.backbone or "default").save(out)
    metrics = {
        "train_arms": len(arms_train),
        "target_mean": mean,
        "target_std": std,
        "train_loss": float(result.training_loss),
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
        "config": asdict(cfg),
    }
    if arms_val is not None and not arms_val.empty:
        pred = PointwiseScorer.from_pretrained(out, device=cfg.device).score(
            arms_val["text"].tolist()
        )
        truth = logit_ctr(arms_val["clicks"], arms_val["pv"])
        metrics["val_pearson"] = float(np.corrcoef(pred, truth)[0, 1]) if len(pred) > 1 else None
    (out / "train_metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    return metrics


class PointwiseScorer:
    """A saved pointwise regressor: `score(texts)` -> predicted standardised logit CTR."""

    def __init__(self, model, tokenizer, settings: RankerSettings, device: str = "cpu") -> None:
        self.model, self.tokenizer, self.settings, self.device = model, tokenizer, settings, device

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = None) -> PointwiseScorer:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        settings = RankerSettings.load(model_dir)
        if settings.kind != "pointwise":
            raise PushgenError(f"{model_dir} holds a {settings.kind} model, not a pointwise one")
        device = pick_device(device)
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).to(device).eval()
        return cls(model, AutoTokenizer.from_pretrained(str(model_dir)), settings, device)

    def score(self, texts: list[str]) -> np.ndarray:
        out, bs = [], self.settings.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), bs):
                enc = self.tokenizer(
                    [str(t) for t in texts[start : start + bs]],
                    truncation=True,
                    max_length=self.settings.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                out.append(self.model(**enc).logits[:, 0].float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def pair_probs(self, texts_a: list[str], texts_b: list[str]) -> np.ndarray:
        """P(a beats b) read off the score difference (a logistic link on standardised scores)."""
        scores = self.score(list(texts_a) + list(texts_b))
        n = len(texts_a)
        return 1.0 / (1.0 + np.exp(-(scores[:n] - scores[n:])))
