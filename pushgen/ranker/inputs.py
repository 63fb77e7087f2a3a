"""What a saved ranker reads: its settings file (`RankerSettings`, `ranker_config.json`), the one
spelling of the caption segment, and the check on candidate texts. Shared by the pairwise
(`select`) and listwise (`listwise`) rankers without either importing the other."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pushgen.core.errors import ConfigError, PushgenError

RANKER_CONFIG_FILE = "ranker_config.json"


@dataclass
class RankerSettings:
    """What `PairwiseRanker` needs to know about a saved model (written next to its weights)."""

    kind: str = "pairwise"  # "pairwise" cross-encoder or "pointwise" regressor (the ablation)
    max_length: int = 64  # tokens per (a, b) input; longer inputs are truncated
    use_caption: bool = False  # the model was trained with the caption appended to the pair
    backbone: str = ""  # where the encoder came from (for the record)
    batch_size: int = 256  # pairs per forward pass at inference (all K(K-1) pairs for K <= 16)
    head: str = "cls"  # the pairwise head (`pushgen.ranker.model.HEADS`); older models: "cls"
    pool_layers: int = 1  # segment_diff: last N layers averaged before pooling; older models: 1
    temperature: float = 1.0  # P = sigmoid(logit / T), fitted after training (ranker/calibrate.py)

    @classmethod
    def load(cls, model_dir: str | Path) -> RankerSettings:
        path = Path(model_dir) / RANKER_CONFIG_FILE
        if not path.exists():
            raise PushgenError(f"{model_dir} is not a pushgen ranker (no {RANKER_CONFIG_FILE})")
        raw = json.loads(path.read_text())
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, model_dir: str | Path) -> None:
        (Path(model_dir) / RANKER_CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))


def caption_segment(text: str, caption: str, sep_token: str | None) -> str:
    """`text [SEP] caption`: the caption as a third segment after b, which a and b both attend to
    but neither pools (`pushgen.ranker.model`); the one spelling for training and inference."""
    return f"{text} {sep_token or ' '} {caption}"


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConfigError("texts must be a list of candidate strings")
    if len(texts) == 0:
        raise ConfigError("no candidates to rank")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigError(f"candidate(s) {bad} are empty or not strings")
    return list(texts)
