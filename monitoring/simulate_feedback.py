"""Synthesise a serving log and its feedback from the push-world simulator (demo and tests).

Each request serves one video: one candidate per category is written from the simulator's style
templates, a ranker scores them, the top score is selected, and feedback clicks are drawn as
Binomial(pv, true_ctr(world, video_id, text)) of the selected push. Three regimes:

- `healthy`: the score is the true CTR logit plus noise, so it tracks CTR;
- `collapsed`: the generator has collapsed: most requests get candidates of one category in one
  wording (the paper's failure signature);
- `shuffled`: the ranker is broken: scores are shuffled across candidates, so they carry no signal.

    log, feedback = simulate_serving(sim.world, ServingSimConfig(n_requests=300, mode="collapsed"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pushgen.errors import ConfigError
from pushgen.simulator import TEMPLATES, Simulation, World, true_ctr

MODES = ("healthy", "collapsed", "shuffled")


@dataclass
class ServingSimConfig:
    """Size and regime of a simulated serving window."""

    n_requests: int = 400  # requests in the window (one video each, drawn with replacement)
    mode: str = "healthy"  # healthy | collapsed | shuffled
    ranker_noise: float = 0.3  # sd of the noise on the true logit that makes the reward score
    collapse_category: str = "Suspense"  # the style a collapsed generator falls into
    collapse_share: float = 0.9  # share of requests whose candidates all collapsed
    pv_range: tuple[int, int] = (500, 5000)  # exposures of the selected push, uniform
    model_version: str = "sim-ranker-1"  # written to the log's model_version
    start: str = "2026-11-01"  # served_at of the first request
    interval_s: int = 60  # seconds between requests
    seed: int = 0

    def check(self, world: World) -> None:
        """Reject impossible settings with a clear message."""
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.n_requests < 1:
            raise ConfigError("n_requests must be >= 1")
        if (
            self.collapse_category not in TEMPLATES
            or self.collapse_category not in world.categories
        ):
            raise ConfigError(
                f"collapse_category {self.collapse_category!r} is not a world category"
            )
        if not 0 <= self.collapse_share <= 1:
            raise ConfigError("collapse_share must be in [0, 1]")
        if not 0 < self.pv_range[0] <= self.pv_range[1]:
            raise ConfigError("pv_range must be (low, high) with 0 < low <= high")


def write_candidate(video: dict, template: str, num: int) -> str:
    """Fill one style template with a video's own entities (so the text is faithful)."""
    return template.format(
        name=video["name"], place=video["place"], num=num, thing=video["thing"], verb=video["verb"]
    )


def _candidates(
    world: World, video: dict, collapsed: bool, cfg: ServingSimConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """(category, text) per candidate: one per category, or all in the collapsed style and wording."""
    if collapsed:
        template = TEMPLATES[cfg.collapse_category][0]  # one wording, over and over
        text = write_candidate(video, template, int(video["number"]))
        return [(cfg.collapse_category, text)] * len(world.categories)
    out = []
    for category in world.categories:
        options = TEMPLATES[category]
        template = options[int(rng.integers(len(options)))]
        out.append((category, write_candidate(video, template, int(video["number"]))))
    return out


def simulate_serving(
    world: World, cfg: ServingSimConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A serving log (every candidate, the selected one flagged) and feedback for the selected."""
    cfg = cfg or ServingSimConfig()
    cfg.check(world)
    rng = np.random.default_rng(cfg.seed)
    video_ids = rng.choice(world.videos["video_id"].to_numpy(), cfg.n_requests)
    rows = []
    for i, video_id in enumerate(video_ids):
        video = world.video(video_id)
        collapsed = cfg.mode == "collapsed" and rng.random() < cfg.collapse_share
        for category, text in _candidates(world, video, collapsed, cfg, rng):
            ctr = true_ctr(world, video_id, text)
            rows.append(
                {
                    "request_id": f"q{cfg.seed}-{i:06d}",
                    "video_id": video_id,
                    "category": category,
                    "text": text,
                    "true_ctr": ctr,
                    # a healthy ranker's score: the true logit seen through noise
                    "reward_score": math.log(ctr / (1 - ctr)) + rng.normal(0, cfg.ranker_noise),
                }
            )
    log = pd.DataFrame(rows)
    if cfg.mode == "shuffled":
        log["reward_score"] = rng.permutation(log["reward_score"].to_numpy())
    best = log.groupby("request_id")["reward_score"].idxmax()
    log["selected"] = log.index.isin(best)
    request_no = log["request_id"].str.rsplit("-", n=1).str[1].astype(int)
    log["served_at"] = pd.Timestamp(cfg.start) + pd.to_timedelta(
        request_no * cfg.interval_s, unit="s"
    )
    log["model_version"] = cfg.model_version
    return log, _feedback(log[log["selected"]], cfg, rng)


def _feedback(
    selected: pd.DataFrame, cfg: ServingSimConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Exposures and clicks of the selected pushes: clicks ~ Binomial(pv, true CTR)."""
    pv = rng.integers(cfg.pv_range[0], cfg.pv_range[1] + 1, len(selected))
    return pd.DataFrame(
        {
            "request_id": selected["request_id"].to_numpy(),
            "pv": pv.astype(np.int64),
            "clicks": rng.binomial(pv, selected["true_ctr"].to_numpy()).astype(np.int64),
        }
    )


def reference_pushes(sim: Simulation) -> pd.DataFrame:
    """Historical pushes as a monitoring reference: category, text, ctr.

    Uses the labelled `category` when the table has one; a raw simulation only has the writer's
    `true_category`, which stands in for the labeller here.
    """
    pushes = sim.pushes
    category = pushes["category"] if "category" in pushes.columns else pushes["true_category"]
    return pd.DataFrame({"category": category, "text": pushes["text"], "ctr": pushes["ctr"]})
