"""The push-world simulator: determinism, contracts, and that its truth behaves as designed."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression

from pushgen.core.errors import ConfigError, DataContractError
from pushgen.data.categories import DEFAULT_CATEGORIES
from pushgen.data.contracts import CONTRACTS, validate
from pushgen.data.simulator import (
    SimConfig,
    World,
    _text_logit,
    simulate,
    text_features,
    true_ctr,
    true_style,
    write_simulation,
)


def test_deterministic_for_a_seed():
    a = simulate(SimConfig(n_videos=40, seed=3))
    b = simulate(SimConfig(n_videos=40, seed=3))
    c = simulate(SimConfig(n_videos=40, seed=4))
    pd.testing.assert_frame_equal(a.pushes, b.pushes)
    pd.testing.assert_frame_equal(a.ab_tests, b.ab_tests)
    assert not a.pushes["text"].equals(c.pushes["text"])


def test_outputs_meet_contracts_and_files_round_trip(sim, sim_dir):
    for name, df in [("videos", sim.videos), ("pushes", sim.pushes), ("ab_tests", sim.ab_tests)]:
        assert set(CONTRACTS[name].columns) <= set(df.columns)
        valid, rejected = validate(name, df, known_video_ids=sim.videos.video_id)
        assert rejected.empty, rejected.reject_reason.value_counts()
    assert sorted(p.name for p in sim_dir.iterdir()) == [
        "ab_tests.parquet",
        "pushes.parquet",
        "videos.parquet",
        "world.json",
    ]
    world = World.load(sim_dir / "world.json")
    row = sim.pushes.iloc[5]
    assert true_ctr(world, row.video_id, row.text) == pytest.approx(row.true_ctr)


def test_shapes_styles_and_ab_tests(sim):
    pushes, ab = sim.pushes, sim.ab_tests
    assert pushes.groupby("video_id").size().min() >= 1
    assert set(pushes.true_category) == set(DEFAULT_CATEGORIES)
    sizes = ab.groupby("test_id").size()
    assert sizes.between(2, 4).all()
    assert (ab.groupby("test_id").pv.nunique() == 1).all()  # equal exposure per arm
    assert (ab.groupby("test_id").video_id.nunique() == 1).all()
    # varied wording: many distinct texts per style, with questions, numbers, emojis, typos
    assert pushes.groupby("true_category").text.nunique().min() > 20
    assert pushes.text.str.contains(r"\?").any() and pushes.text.str.contains(r"\d").any()
    assert (pushes.htr > 0.01).any()  # invented entities raise the hate rate


def test_true_style_parses_the_writers_style(sim):
    agreement = (sim.pushes.text.map(true_style) == sim.pushes.true_category).mean()
    assert agreement > 0.95


def test_true_ctr_scores_any_text_and_punishes_invention(sim):
    world = sim.world
    video = world.video("v000001")
    faithful = f"{int(video['number'])} tips from {video['name']} to master the {video['thing']}"
    invented = (
        f"{int(video['number']) * 10 + 7} tips from Taylor Swift to master the {video['thing']}"
    )
    assert text_features(invented, video)["invented"] == 2
    assert text_features(faithful, video)["invented"] == 0
    assert true_ctr(world, "v000001", invented) < true_ctr(world, "v000001", faithful)
    assert 0 < true_ctr(world, "v000001", "some generated text nobody templated") < 1
    with pytest.raises(DataContractError, match="unknown video_id"):
        true_ctr(world, "nope", "text")


def _pair_features(world, video_id, text):
    f = text_features(text, world.video(video_id))
    style = [float(f["style"] == c) for c in world.categories]
    return np.array(
        [
            *style,
            f["question"],
            f["faithful_number"],
            f["faithful_entities"],
            f["invented"],
            f["emoji"],
            f["length"] / 50,
        ]
    )


def test_text_effects_are_recoverable_from_ab_pairs():
    sim = simulate(SimConfig(n_videos=1500, seed=11))
    ab, world = sim.ab_tests, sim.world
    x, y, test = [], [], []
    for tid, arms in ab.groupby("test_id"):
        arms = arms.reset_index(drop=True)
        for i in range(len(arms)):
            for j in range(i + 1, len(arms)):
                a, b = arms.iloc[i], arms.iloc[j]
                if a.clicks == b.clicks:
                    continue
                x.append(
                    _pair_features(world, a.video_id, a.text)
                    - _pair_features(world, b.video_id, b.text)
                )
                y.append(int(a.clicks > b.clicks))
                test.append(tid)
    x, y, test = np.array(x), np.array(y), np.array(test)
    train = np.array([int(t[1:]) % 5 != 0 for t in test])
    model = LogisticRegression(max_iter=1000).fit(
        np.vstack([x[train], -x[train]]), np.concatenate([y[train], 1 - y[train]])
    )
    accuracy = (model.predict(x[~train]) == y[~train]).mean()
    assert accuracy > 0.6, accuracy  # chance is 0.5


def _ctr_vs_text_quality(sim) -> tuple[float, float]:
    """Rank correlation of observed CTR with the true text effect: across videos, within videos."""
    world, pushes = sim.world, sim.pushes
    topic = dict(zip(world.videos.video_id, world.videos.topic, strict=True))
    quality = pd.Series(
        [
            _text_logit(world, topic[v], text_features(t, world.video(v)))
            for v, t in zip(pushes.video_id, pushes.text, strict=True)
        ],
        index=pushes.index,
    )
    across = spearmanr(pushes.ctr, quality).statistic
    by_video = pushes.video_id
    within = spearmanr(
        pushes.ctr - pushes.ctr.groupby(by_video).transform("mean"),
        quality - quality.groupby(by_video).transform("mean"),
    ).statistic
    return across, within


def test_confounders_make_pointwise_ctr_a_poor_judge_of_text(sim):
    across, within = _ctr_vs_text_quality(sim)
    assert across < 0.4 and within > across + 0.3, (across, within)
    unconfounded, _ = _ctr_vs_text_quality(
        simulate(SimConfig(n_videos=120, seed=7, confounder_strength=0.0))
    )
    assert unconfounded > across + 0.3, (unconfounded, across)


def test_bad_config_is_an_error():
    with pytest.raises(ConfigError):
        simulate(SimConfig(n_videos=0))
    with pytest.raises(ConfigError, match="no writing templates"):
        simulate(SimConfig(n_videos=5, categories=("Sarcasm",)))


def test_write_is_complete(tmp_path):
    paths = write_simulation(simulate(SimConfig(n_videos=5, seed=1)), tmp_path / "out")
    assert all(p.exists() for p in paths.values())
    assert not list((tmp_path / "out").glob(".*tmp"))
